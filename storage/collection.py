"""One collection in memory: its points in scroll order and its vector stores.

This is the view reads are served from. ``storage.state`` keeps it in step with
RocksDB, which is what survives a restart.

Every change of a point's payload goes through ``add``, ``remove`` or
``set_payload``, because the payload index (storage/filters/payload_index.py) is kept up
to date there.
"""
from sortedcontainers import SortedList

from storage.config import CollectionConfig
from storage.errors import BadRequest, NotFound
from storage.ids import PointId, encode_id
from storage.filters import compile_filter
from storage.filters.payload_index import PayloadIndex
from storage.filters.text_index import text_tokenizer
from storage.paths import parse_path
from storage.vectors.multi import MultiStore
from storage.vectors.sparse import SparseStore
from storage.vectors.store import VectorStore


class Point:
    __slots__ = ("id", "key", "payload", "version")

    def __init__(self, pid: PointId, key: bytes, payload: dict, version: int):
        self.id = pid
        self.key = key
        self.payload = payload
        self.version = version


class Collection:
    def __init__(self, cid: int, name: str, config: CollectionConfig, created_offset: int):
        self.cid = cid
        self.name = name
        self.config = config
        self.created_offset = created_offset
        self.points: dict = {}  # key -> Point
        self.order = SortedList()  # keys in Qdrant scroll order
        self.vectors = {name: VectorStore(p.size, p.distance, datatype=p.datatype) for name, p in config.vectors.items()
                        if not p.multivector}
        self.multi = {name: MultiStore(p.size, p.distance, p.datatype) for name, p in config.vectors.items() if p.multivector}
        self.sparse = {name: SparseStore(p.modifier) for name, p in config.sparse.items()}
        self.payload_index = PayloadIndex(self.points)
        self.payload_schema: dict = {}  # declared payload indexes: field -> Qdrant field_schema
        self.text_indexes: dict = {}  # key path -> Tokenizer, derived from payload_schema
        self.payload_revision = 0  # bumped by every payload change, for caches derived from payloads
        # The highest version any point has been given (removed ones included): an
        # index snapshot taken now covers no change with a higher one.
        self.newest_version = -1

    def set_payload_schema(self, schema: dict) -> None:
        """Declared payload indexes (field -> field_schema); text indexes change how
        text filters on their key match, so filter caches start over."""
        self.payload_schema = schema
        self.text_indexes = {parse_path(field): text_tokenizer(s) for field, s in schema.items()
                             if (s.get("type") if isinstance(s, dict) else s) == "text"}
        self.payload_revision += 1

    def compile_filter(self, raw, where: str = "filter"):
        """A filter as this collection evaluates it (with its text indexes)."""
        return compile_filter(raw, where, self.text_indexes)

    def __len__(self) -> int:
        return len(self.points)

    def get(self, key: bytes) -> Point | None:
        return self.points.get(key)

    def add(self, point: Point) -> None:
        """Insert a point, or replace the one with its key."""
        old = self.points.get(point.key)
        if old is None:
            self.order.add(point.key)
        self.points[point.key] = point
        if point.version > self.newest_version:
            self.newest_version = point.version
        self.payload_index.replaced(point.key, None if old is None else old.payload, point.payload)
        self.payload_revision += 1

    def load(self, points: list, vectors: dict) -> None:
        """Fill an empty collection with points in scroll order (the loader's bulk
        path): what ``add`` of each in turn would leave. ``vectors``: {name: (keys,
        prepared rows)} for the dense stores."""
        if self.points:
            raise RuntimeError("load fills an empty collection")
        keys = [p.key for p in points]
        self.points.update(zip(keys, points))  # the payload index holds this very dict
        self.newest_version = max((p.version for p in points), default=-1)
        self.order = SortedList(keys)
        if self.payload_index.paths():  # built lazily: none yet on a fresh collection
            for p in points:
                self.payload_index.replaced(p.key, None, p.payload)
        for name, (vkeys, rows) in vectors.items():
            self.vectors[name].load(vkeys, rows)
        self.payload_revision += 1

    def remove(self, key: bytes) -> None:
        point = self.points.pop(key, None)
        if point is not None:
            self.order.remove(key)
            for store in self.stores():
                store.remove(key)
            self.payload_index.replaced(key, point.payload, None)
            self.payload_revision += 1

    def touch(self, point: Point, version: int) -> None:
        """A stored point changed in place (its payload or vectors): its new version."""
        point.version = version
        if version > self.newest_version:
            self.newest_version = version

    def set_payload(self, point: Point, payload: dict) -> None:
        """Give a stored point a new payload object. Never change a stored payload in
        place: the index reads the old one to know what to unindex."""
        old = point.payload
        point.payload = payload
        self.payload_index.replaced(point.key, old, payload)
        self.payload_revision += 1

    def stores(self):
        """Every vector store: dense, multivector and sparse."""
        for _name, store in self.named_stores():
            yield store

    def store(self, name: str):
        for stores in (self.vectors, self.multi, self.sparse):
            if name in stores:  # not `get() or`: an empty store is falsy
                return stores[name]
        return None

    def vector_names(self, key: bytes) -> set:
        return {name for name, store in self.named_stores() if key in store}

    def named_stores(self):
        yield from self.vectors.items()
        yield from self.multi.items()
        yield from self.sparse.items()

    def vector_names_view(self) -> "VectorNames":
        return VectorNames(dict(self.named_stores()))

    def stored_vector(self, pid, name: str):
        """The vector ``name`` of the point ``pid``, for a query that names a point:
        404 for a missing point, 400 for a name the collection lacks or the point has not."""
        self.config.check_name(name)
        key = encode_id(pid)
        if key not in self.points:
            raise NotFound(f"Not found: No point with id {pid} found")
        vec = self.store(name).get(key)
        if vec is None:
            raise BadRequest(f"Wrong input: Point {pid} has no vector `{name}`")
        return vec

    def point_vectors(self, key: bytes) -> dict:
        """name -> dense float32 array or SparseVector."""
        out = {}
        for name, store in self.named_stores():
            vec = store.get(key)
            if vec is not None:
                out[name] = vec
        return out


class VectorNames:
    """The vector names of the point whose key is set in ``key``, for ``has_vector``:
    one object reused across a scan instead of a set built per point."""
    __slots__ = ("vectors", "key")

    def __init__(self, vectors: dict):
        self.vectors = vectors
        self.key = None

    def __contains__(self, name) -> bool:
        store = self.vectors.get(name)
        return store is not None and self.key in store

    def __iter__(self):
        return (name for name, store in self.vectors.items() if self.key in store)
