"""One collection in memory: its points in scroll order and its vector stores.

This is the view reads are served from. ``storage.state`` keeps it in step with
RocksDB, which is what survives a restart.
"""
from sortedcontainers import SortedList

from storage.config import CollectionConfig
from storage.ids import PointId
from storage.vectors import VectorStore


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
        self.vectors = {name: VectorStore(p.size, p.distance) for name, p in config.vectors.items()}

    def __len__(self) -> int:
        return len(self.points)

    def get(self, key: bytes) -> Point | None:
        return self.points.get(key)

    def add(self, point: Point) -> None:
        if point.key not in self.points:
            self.order.add(point.key)
        self.points[point.key] = point

    def remove(self, key: bytes) -> None:
        if self.points.pop(key, None) is not None:
            self.order.remove(key)
            for store in self.vectors.values():
                store.remove(key)

    def vector_names(self, key: bytes) -> set:
        return {name for name, store in self.vectors.items() if key in store}

    def point_vectors(self, key: bytes) -> dict:
        out = {}
        for name, store in self.vectors.items():
            vec = store.get(key)
            if vec is not None:
                out[name] = vec
        return out
