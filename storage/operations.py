"""The operations of pointlog, defined once, as plain data.

An operation is what one WAL record asks for. The front doors (api/rest, later
gRPC) build them from requests; ``streams/codec.py`` writes and reads them as WAL
records; ``storage/apply.py`` applies them. None of that lives here: a class here
lists its fields, the invariants any instance must hold (``check``), the checks
that need the collection's configuration (``validate_against``), and nothing else.

The WAL value of an operation is ``{"op": kind, <field>: <value>, ...}`` with the
field names of Qdrant's request body; a field whose Python name differs says so
with ``wire("name")``. ``KINDS`` (filled by ``@operation``) is the one list of
operation kinds: the codec, the applier and the record schema test read it.

Adding an operation: its class here, its function in ``storage/apply.py``, and its
route in the API.
"""
from dataclasses import dataclass, field
from typing import ClassVar

from storage.config import CollectionConfig, check_settings
from storage.strict_config import check_config
from storage.errors import BadRequest, Unprocessable
from storage.ids import PointId
from storage.paths import parse_path
from storage.filters.text_index import text_tokenizer
from storage.vectors.sparse import SparseVector

KINDS: dict = {}  # kind -> class
BATCHABLE: dict = {}  # the kinds a /points/batch request (and a batch record) may hold
ALIASES = {"delete_points": "delete"}  # other names a record may use for a kind


def operation(kind: str, batchable: bool = False):
    def register(cls):
        cls.kind = kind
        KINDS[kind] = cls
        if batchable:
            BATCHABLE[kind] = cls
        return cls
    return register


def wire(name: str, *aliases: str, **kwargs):
    """A field written under another name in the WAL value (the Qdrant body's name);
    ``aliases`` are further names a record may use for it, as Qdrant's body does."""
    return field(metadata={"wire": name, "aliases": aliases}, **kwargs)


FILTER = {"filter": True}  # field metadata: a Qdrant filter, validated when decoded


@dataclass
class PointsSelector:
    """Either explicit ids or a filter; writes that take one resolve it at apply time."""
    ids: list | None = None
    filter: dict | None = None


@dataclass
class PointStruct:
    id: PointId
    vectors: dict  # name -> float32 array
    payload: dict | None = None


@dataclass
class PointVectors:
    """New vectors for an existing point (update_vectors)."""
    id: PointId
    vectors: dict  # name -> float32 array


@dataclass
class Operation:
    kind: ClassVar[str] = ""

    def check(self) -> None:
        """Invariants of the operation itself; raise BadRequest."""

    def validate_against(self, config: CollectionConfig) -> None:
        """Checks that need the collection config; raise BadRequest."""

    def points_written(self) -> int:
        """Points whose vectors this writes, for throughput figures."""
        return 0


@dataclass
class Command:
    """An operation addressed to a collection: what one WAL record carries."""
    collection: str
    op: Operation


# ---- collections -------------------------------------------------------------

@operation("shard_barrier")
@dataclass
class ShardBarrier(Operation):
    """Written into every shard of a sharded collection (storage/shards.py) after an
    operation that must reach all of them was logged in the WAL at ``upto``: the shard
    applies, at this point of its own log, every such operation up to there, in WAL
    order. Only shard topics hold it; ``partition`` is the WAL partition of ``upto``."""
    upto: int
    partition: int = 0

    def check(self) -> None:
        for name in ("upto", "partition"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BadRequest(f"Format error in JSON body: {name} must be an offset (u64)")


@operation("create_collection")
@dataclass
class CreateCollection(Operation):
    config: CollectionConfig


@operation("delete_collection")
@dataclass
class DeleteCollection(Operation):
    pass


@operation("update_collection")
@dataclass
class UpdateCollection(Operation):
    """PATCH /collections/{name}: diffs merged into the stored configuration."""
    vectors: dict | None = None  # name -> {hnsw_config, quantization_config, on_disk}
    params: dict | None = None  # replication_factor, write_consistency_factor, on_disk_payload, ...
    hnsw_config: dict | None = None
    optimizers_config: dict | None = None
    quantization_config: dict | str | None = None
    metadata: dict | None = None
    strict_mode_config: dict | None = None  # given limits replace the stored ones (storage/strict_config.py)

    def check(self) -> None:
        if self.strict_mode_config is not None:
            check_config(self.strict_mode_config)
        for name, diff in (self.vectors or {}).items():
            if not isinstance(diff, dict):
                raise BadRequest(f"Format error in JSON body: vectors.{name} must be an object")
        check_settings({**(self.params or {}), "hnsw_config": self.hnsw_config,
                        "optimizers_config": self.optimizers_config})

    def validate_against(self, config: CollectionConfig) -> None:
        for name in self.vectors or {}:
            config.params(name)

    def diff(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


# Qdrant's payload field types. pointlog indexes match conditions by itself
# (storage/filters/payload_index.py); a declared index is recorded and reported as the
# collection's payload_schema, so clients that declare indexes keep working.
FIELD_TYPES = ("keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid")


def field_type(schema) -> str | None:
    """A field_schema is a type name or an object of index params with a ``type``."""
    return schema.get("type") if isinstance(schema, dict) else schema


def check_field_name(name) -> str:
    if not isinstance(name, str) or not name:
        raise BadRequest("Format error in JSON body: missing field `field_name`")
    parse_path(name)  # a key path, as in filters
    return name


@operation("create_field_index")
@dataclass
class CreateFieldIndex(Operation):
    field_name: str
    field_schema: str | dict

    def check(self) -> None:
        check_field_name(self.field_name)
        kind = field_type(self.field_schema)
        if kind not in FIELD_TYPES:
            raise BadRequest(f"Format error in JSON body: field_schema: unknown variant `{kind}`, "
                             f"expected one of {', '.join(f'`{t}`' for t in FIELD_TYPES)}")
        schema = self.field_schema
        if kind == "text":
            text_tokenizer(schema)  # refuses params the server refuses or pointlog lacks
        if kind == "integer" and isinstance(schema, dict) and schema.get("lookup") is False \
                and schema.get("range") is False:
            raise Unprocessable("Validation error in JSON body: [field_schema: the 'lookup' and 'range' "
                                "capabilities can't be both disabled]")


@operation("delete_field_index")
@dataclass
class DeleteFieldIndex(Operation):
    field_name: str

    def check(self) -> None:
        check_field_name(self.field_name)


# Alias actions apply to the catalog, not to one collection: their records are keyed
# by a name no collection can have ('*' is refused in collection names).
CATALOG = "*"
ALIAS_ACTIONS = {"create_alias": ("collection_name", "alias_name"), "delete_alias": ("alias_name",),
                 "rename_alias": ("old_alias_name", "new_alias_name")}


@operation("update_aliases")
@dataclass
class UpdateAliases(Operation):
    """POST /collections/aliases: a list of actions applied together, or not at all."""
    actions: list[dict]  # {"create_alias": {...}} | {"delete_alias": {...}} | {"rename_alias": {...}}

    def check(self) -> None:
        for i, action in enumerate(self.actions):
            if len(action) != 1 or next(iter(action)) not in ALIAS_ACTIONS:
                raise BadRequest(f"Format error in JSON body: actions[{i}]: expected one of "
                                 f"{', '.join(f'`{k}`' for k in ALIAS_ACTIONS)}")
            (kind, body), = action.items()
            if not isinstance(body, dict):
                raise BadRequest(f"Format error in JSON body: actions[{i}].{kind} must be an object")
            for name in ALIAS_ACTIONS[kind]:
                if not isinstance(body.get(name), str):
                    raise BadRequest(f"Format error in JSON body: actions[{i}].{kind}: missing field `{name}`")


# ---- points ------------------------------------------------------------------

def _check_vectors(points: list, config: CollectionConfig) -> None:
    for p in points:
        for name, vec in p.vectors.items():
            sparse = isinstance(vec, SparseVector)
            config.check_name(name)
            if sparse != (name in config.sparse):
                raise BadRequest(f"Wrong input: Conversion between sparse and regular vectors failed "
                                 f"for vector: {name}")
            if sparse:
                continue
            params = config.params(name)
            if params.multivector and vec.ndim == 1 and len(vec) == 0:
                raise BadRequest(f"Wrong input: Multivector must not be empty for vector '{name}'")
            if (vec.ndim == 2) != params.multivector:
                raise BadRequest(f"Wrong input: Conversion between multi and regular vectors failed "
                                 f"for vector: {name}")
            if vec.shape[-1] != params.size:
                raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {params.size}, "
                                 f"got {vec.shape[0]}")


def _check_selector(selector: PointsSelector) -> None:
    if selector.ids is not None and not selector.ids:
        raise BadRequest("Wrong input: Empty update request")  # Qdrant refuses an update naming no point


UPDATE_MODES = ("upsert", "insert_only", "update_only")


def check_update_mode(mode) -> str:
    if mode not in UPDATE_MODES:
        raise BadRequest(f"Format error in JSON body: update_mode: unknown variant `{mode}`, "
                         "expected one of `upsert`, `insert_only`, `update_only`")
    return mode


@operation("upsert", batchable=True)
@dataclass
class Upsert(Operation):
    points: list[PointStruct]
    # Conditional upsert (Qdrant 1.16+): an existing point is replaced only if it
    # matches `update_filter`; `update_mode` limits the upsert to new or to existing points.
    update_filter: dict | None = field(default=None, metadata=FILTER)
    update_mode: str = "upsert"

    def check(self) -> None:
        check_update_mode(self.update_mode)
        if not self.points:
            raise BadRequest("Wrong input: Empty update request")

    def validate_against(self, config: CollectionConfig) -> None:
        _check_vectors(self.points, config)

    def points_written(self) -> int:
        return len(self.points)


@operation("update_vectors", batchable=True)
@dataclass
class UpdateVectors(Operation):
    points: list[PointVectors]
    update_filter: dict | None = field(default=None, metadata=FILTER)  # only matching points are updated

    def check(self) -> None:
        for i, p in enumerate(self.points):
            if not p.vectors:
                raise Unprocessable(f"Validation error in JSON body: [points[{i}].vector: "
                                    "must specify vectors to update for point]")
        if not self.points:
            raise Unprocessable("Validation error in JSON body: [points: must specify points to update]")

    def validate_against(self, config: CollectionConfig) -> None:
        _check_vectors(self.points, config)

    def points_written(self) -> int:
        return len(self.points)


@operation("delete_vectors", batchable=True)
@dataclass
class DeleteVectors(Operation):
    selector: PointsSelector
    names: list[str] = wire("vector", "vectors")

    def check(self) -> None:
        if not all(isinstance(n, str) for n in self.names):
            raise BadRequest("Format error in JSON body: vector must be a list of vector names")
        if not self.names:
            raise Unprocessable("Validation error in JSON body: [vector: must specify vector names to delete]")
        _check_selector(self.selector)

    def validate_against(self, config: CollectionConfig) -> None:
        for name in self.names:
            config.check_name(name)


@operation("set_payload", batchable=True)
@dataclass
class SetPayload(Operation):
    selector: PointsSelector
    payload: dict
    key: str | None = None  # a payload path to set the payload under

    def check(self) -> None:
        _check_selector(self.selector)


@operation("overwrite_payload", batchable=True)
@dataclass
class OverwritePayload(Operation):
    selector: PointsSelector
    payload: dict

    def check(self) -> None:
        _check_selector(self.selector)


@operation("delete_payload", batchable=True)
@dataclass
class DeletePayload(Operation):
    selector: PointsSelector
    keys: list[str]  # payload paths

    def check(self) -> None:
        _check_selector(self.selector)
        if not all(isinstance(k, str) for k in self.keys):
            raise BadRequest("Format error in JSON body: keys must be a list of strings")


@operation("clear_payload", batchable=True)
@dataclass
class ClearPayload(Operation):
    selector: PointsSelector

    def check(self) -> None:
        _check_selector(self.selector)


@operation("delete", batchable=True)
@dataclass
class DeletePoints(Operation):
    selector: PointsSelector

    def check(self) -> None:
        _check_selector(self.selector)


@operation("batch")
@dataclass
class Batch(Operation):
    """A /points/batch request as ONE record: applied in order, stopping at the first
    error, and no other request interleaves."""
    operations: list[Operation]  # batchable ones

    def check(self) -> None:
        for op in self.operations:
            if op.kind not in BATCHABLE:
                raise BadRequest(f"Format error in JSON body: `{op.kind}` cannot be part of a batch")
            op.check()

    def validate_against(self, config: CollectionConfig) -> None:
        for op in self.operations:
            op.validate_against(config)

    def points_written(self) -> int:
        return sum(op.points_written() for op in self.operations)
