"""The operations of pointlog, defined once.

Each class parses the matching Qdrant request body (``from_body``), turns itself
back into a WAL value (``to_wire``) and is applied by ``storage.apply``. The API,
the WAL codec and the applier all go through these classes, so a record written by
hand to Kafka means exactly what the same body sent over HTTP means.

Structural checks happen here. Checks that need the collection's configuration
(vector names and sizes) are in ``validate_against``; the API runs them before
publishing and the applier runs them again, because external producers skip the API.
"""
from dataclasses import dataclass

import numpy as np

from storage.config import DEFAULT_VECTOR, CollectionConfig
from storage.errors import BadRequest, Unprocessable
from storage.filters import compile_filter
from storage.ids import PointId, parse_id
from storage.paths import parse_path


def _require_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be a JSON object")
    return value


def _require_list(value, where: str) -> list:
    if not isinstance(value, list):
        raise BadRequest(f"Format error in JSON body: {where} must be a list")
    return value


def reject_shard_key(body: dict) -> None:
    """pointlog collections have one shard; ``shard_key: null`` means the same as no key."""
    if body.get("shard_key") is not None:
        raise BadRequest("Bad request: shard keys are not supported by pointlog: every collection has "
                         "a single shard, so leave `shard_key` out (or null)")


def _parse_filter(raw, where: str) -> dict:
    raw = _require_dict(raw, where)
    compile_filter(raw, where)  # reject bad filters before they reach the log
    return raw


def parse_vector(value, where: str) -> np.ndarray:
    """A dense vector from JSON floats, or little-endian float32 bytes from the WAL."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) % 4:
            raise BadRequest(f"Format error in JSON body: {where} has a partial float32")
        return np.frombuffer(value, dtype="<f4")
    if isinstance(value, dict) and ("indices" in value or "values" in value):
        raise BadRequest(f"Wrong input: {where} is a sparse vector; sparse vectors are not supported by pointlog")
    if not isinstance(value, list):
        raise BadRequest(f"Format error in JSON body: {where} must be a list of numbers")
    if not value:  # a 0-dimensional vector: the dimension check reports it, as in Qdrant
        return np.zeros(0, dtype=np.float32)
    try:
        with np.errstate(over="ignore"):
            arr = np.asarray(value)
    except (TypeError, ValueError, OverflowError):  # ragged nesting
        arr = None
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iuf" or _may_hold_bools(arr):
        # numpy turns True into 1.0 and a huge int into an object; Qdrant takes neither
        # for a float: look at the JSON types (slower, so only when in doubt).
        kinds = set(map(type, value))
        if list in kinds:
            raise BadRequest(f"Wrong input: {where} is a multi-vector; multi-vectors are not supported by pointlog")
        if not kinds <= {int, float}:
            raise BadRequest(f"Format error in JSON body: {where} must be a list of numbers")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer beyond any float
            raise BadRequest(f"Format error in JSON body: {where} has a value out of float32 range") from None
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below
        arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise BadRequest(f"Format error in JSON body: {where} has a value out of float32 range")
    return arr


def _parse_column(col: list, where: str):
    """A batch column in one numpy conversion when it is a plain float matrix (the
    common case, several times cheaper than a conversion per row); otherwise row by
    row, with the exact per-vector checks and messages."""
    if col and all(type(row) is list for row in col):
        try:
            with np.errstate(over="ignore"):
                matrix = np.asarray(col)
        except (TypeError, ValueError, OverflowError):
            matrix = None
        if (matrix is not None and matrix.ndim == 2 and matrix.shape[1] > 0 and matrix.dtype.kind == "f"
                and not _may_hold_bools(matrix)):
            with np.errstate(over="ignore"):
                matrix = matrix.astype(np.float32)
            if np.isfinite(matrix).all():
                return list(matrix)
    return [None if row is None else parse_vector(row, f"{where}[{i}]") for i, row in enumerate(col)]


def _may_hold_bools(arr: np.ndarray) -> bool:
    """A JSON true/false among numbers shows up as an exact 1 or 0."""
    return arr.dtype.kind != "f" or bool(((arr == 0.0) | (arr == 1.0)).any())


def parse_vectors(value, where: str) -> dict:
    """``[..]`` is the unnamed vector; ``{name: [..]}`` names any subset."""
    if isinstance(value, dict) and not ("indices" in value or "values" in value):
        return {str(name): parse_vector(v, f"{where}.{name}") for name, v in value.items()}
    return {DEFAULT_VECTOR: parse_vector(value, where)}


def _payload(value, where: str):
    if value is None:
        return None
    return _require_dict(value, where)


@dataclass
class PointsSelector:
    """Either explicit ids or a filter; writes that take one resolve it at apply time."""
    ids: list | None = None
    filter: dict | None = None

    @staticmethod
    def from_body(body: dict, op: str) -> "PointsSelector":
        reject_shard_key(body)
        if body.get("points") is not None:
            ids = [parse_id(i) for i in _require_list(body["points"], "points")]
            if not ids:
                # Qdrant refuses an update that names no point at all.
                raise BadRequest("Wrong input: Empty update request")
            return PointsSelector(ids=ids)
        if body.get("filter") is not None:
            return PointsSelector(filter=_parse_filter(body["filter"], "filter"))
        raise BadRequest(f"Format error in JSON body: {op} needs either `points` (a list of ids) or `filter`")

    def to_wire(self) -> dict:
        return {"points": self.ids} if self.ids is not None else {"filter": self.filter}


@dataclass
class PointStruct:
    id: PointId
    vectors: dict  # name -> float32 array
    payload: dict | None


class Operation:
    kind: str = ""
    writes_points = True

    def to_wire(self, binary: bool = False) -> dict:
        raise NotImplementedError

    def validate_against(self, config: CollectionConfig) -> None:
        """Checks that need the collection config; raise BadRequest."""


@dataclass
class CreateCollection(Operation):
    config: CollectionConfig
    kind = "create_collection"
    writes_points = False

    @staticmethod
    def from_body(body) -> "CreateCollection":
        return CreateCollection(CollectionConfig.from_body(body if body is not None else {}))

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.config.to_json()}


@dataclass
class DeleteCollection(Operation):
    kind = "delete_collection"
    writes_points = False

    @staticmethod
    def from_body(body) -> "DeleteCollection":
        return DeleteCollection()

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind}


# Qdrant's payload field types. pointlog indexes match conditions by itself
# (storage/filters/payload_index.py); a declared index is recorded and reported as the
# collection's payload_schema, so clients that declare indexes keep working.
FIELD_TYPES = ("keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid")


def field_type(schema) -> str | None:
    """A field_schema is a type name or an object of index params with a ``type``."""
    return schema.get("type") if isinstance(schema, dict) else schema


def _field_name(body: dict) -> str:
    name = body.get("field_name")
    if not isinstance(name, str) or not name:
        raise BadRequest("Format error in JSON body: missing field `field_name`")
    return name


@dataclass
class CreateFieldIndex(Operation):
    field_name: str
    field_schema: str | dict
    kind = "create_field_index"
    writes_points = False

    @staticmethod
    def from_body(body) -> "CreateFieldIndex":
        body = _require_dict(body, "request body")
        name = _field_name(body)
        parse_path(name)  # a key path, as in filters
        schema = body.get("field_schema")
        kind = field_type(schema)
        if kind not in FIELD_TYPES:
            raise BadRequest(f"Format error in JSON body: field_schema: unknown variant `{kind}`, "
                             f"expected one of {', '.join(f'`{t}`' for t in FIELD_TYPES)}")
        return CreateFieldIndex(name, schema)

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, "field_name": self.field_name, "field_schema": self.field_schema}


@dataclass
class DeleteFieldIndex(Operation):
    field_name: str
    kind = "delete_field_index"
    writes_points = False

    @staticmethod
    def from_body(body) -> "DeleteFieldIndex":
        return DeleteFieldIndex(_field_name(_require_dict(body, "request body")))

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, "field_name": self.field_name}


def _wire_vectors(vectors: dict, binary: bool):
    enc = (lambda a: a.astype("<f4", copy=False).tobytes()) if binary else (lambda a: a.tolist())
    if set(vectors) == {DEFAULT_VECTOR}:
        return enc(vectors[DEFAULT_VECTOR])
    return {n: enc(v) for n, v in vectors.items()}


def _check_vectors(vectors: dict, config: CollectionConfig) -> None:
    for name, vec in vectors.items():
        params = config.params(name)
        if vec.shape[0] != params.size:
            raise BadRequest(f"Wrong input: Vector dimension error: expected dim: {params.size}, got {vec.shape[0]}")


UPDATE_MODES = ("upsert", "insert_only", "update_only")


@dataclass
class Upsert(Operation):
    points: list  # of PointStruct
    # Conditional upsert (Qdrant 1.16+): an existing point is replaced only if it
    # matches `update_filter`; `update_mode` limits the upsert to new or to existing points.
    update_filter: dict | None = None
    update_mode: str = "upsert"
    kind = "upsert"

    @staticmethod
    def from_body(body) -> "Upsert":
        body = _require_dict(body, "request body")
        reject_shard_key(body)
        update_filter = None
        if body.get("update_filter") is not None:
            update_filter = _parse_filter(body["update_filter"], "update_filter")
        mode = body.get("update_mode") or "upsert"
        if mode not in UPDATE_MODES:
            raise BadRequest(f"Format error in JSON body: update_mode: unknown variant `{mode}`, "
                             "expected one of `upsert`, `insert_only`, `update_only`")
        if body.get("batch") is not None:
            points = _points_from_batch(_require_dict(body["batch"], "batch"))
        elif body.get("points") is not None:
            points = Upsert._points_from_list(body["points"])
        else:
            raise BadRequest("Format error in JSON body: Invalid PointInsertOperations format: "
                             "expected `points` or `batch`")
        if not points:
            raise BadRequest("Wrong input: Empty update request")
        return Upsert(points, update_filter, mode)

    @staticmethod
    def _points_from_list(raw) -> list:
        points = []
        for i, p in enumerate(_require_list(raw, "points")):
            p = _require_dict(p, f"points[{i}]")
            if "id" not in p:
                raise BadRequest(f"Format error in JSON body: points[{i}]: missing field `id`")
            vec = p.get("vector", p.get("vectors"))
            vectors = {} if vec is None else parse_vectors(vec, f"points[{i}].vector")
            points.append(PointStruct(parse_id(p["id"]), vectors, _payload(p.get("payload"), f"points[{i}].payload")))
        return points

    def to_wire(self, binary: bool = False) -> dict:
        out = []
        for p in self.points:
            item = {"id": p.id, "vector": _wire_vectors(p.vectors, binary)}
            if p.payload is not None:
                item["payload"] = p.payload
            out.append(item)
        wire = {"op": self.kind, "points": out}
        if self.update_filter is not None:
            wire["update_filter"] = self.update_filter
        if self.update_mode != "upsert":
            wire["update_mode"] = self.update_mode
        return wire

    def validate_against(self, config: CollectionConfig) -> None:
        for p in self.points:
            _check_vectors(p.vectors, config)


def _points_from_batch(batch: dict) -> list:
    ids = [parse_id(i) for i in _require_list(batch.get("ids"), "batch.ids")]
    n = len(ids)
    raw_vectors = batch.get("vectors")
    columns: dict = {}
    if isinstance(raw_vectors, dict):
        for name, col in raw_vectors.items():
            columns[str(name)] = _require_list(col, f"batch.vectors.{name}")
    elif raw_vectors is not None:
        columns[DEFAULT_VECTOR] = _require_list(raw_vectors, "batch.vectors")
    for name, col in columns.items():
        if len(col) != n:
            raise Unprocessable(f"Validation error in JSON body: [batch: number of ids and vectors must be "
                                f"equal ({n} != {len(col)})]")
    payloads = batch.get("payloads")
    if payloads is not None:
        payloads = _require_list(payloads, "batch.payloads")
        if len(payloads) != n:
            raise Unprocessable(f"Validation error in JSON body: [batch: number of ids and payloads must be "
                                f"equal ({n} != {len(payloads)})]")
    parsed = {name: _parse_column(col, f"batch.vectors.{name}" if name else "batch.vectors")
              for name, col in columns.items()}
    points = []
    for i, pid in enumerate(ids):
        vectors = {}
        for name, col in parsed.items():
            if col[i] is not None:
                vectors[name] = col[i]
        payload = _payload(payloads[i], f"batch.payloads[{i}]") if payloads is not None else None
        points.append(PointStruct(pid, vectors, payload))
    return points


@dataclass
class UpdateVectors(Operation):
    points: list  # of PointStruct with payload None
    update_filter: dict | None = None  # only existing points matching it are updated
    kind = "update_vectors"

    @staticmethod
    def from_body(body) -> "UpdateVectors":
        body = _require_dict(body, "request body")
        reject_shard_key(body)
        if body.get("points") is None:
            raise BadRequest("Format error in JSON body: missing field `points`")
        points = []
        for i, p in enumerate(_require_list(body.get("points"), "points")):
            p = _require_dict(p, f"points[{i}]")
            if "id" not in p:
                raise BadRequest(f"Format error in JSON body: points[{i}]: missing field `id`")
            vec = p.get("vector", p.get("vectors"))
            if vec is None:
                raise BadRequest(f"Format error in JSON body: points[{i}]: missing field `vector`")
            vectors = parse_vectors(vec, f"points[{i}].vector")
            if not vectors:
                raise Unprocessable(f"Validation error in JSON body: [points[{i}].vector: "
                                    "must specify vectors to update for point]")
            points.append(PointStruct(parse_id(p["id"]), vectors, None))
        if not points:
            raise Unprocessable("Validation error in JSON body: [points: must specify points to update]")
        update_filter = None
        if body.get("update_filter") is not None:
            update_filter = _parse_filter(body["update_filter"], "update_filter")
        return UpdateVectors(points, update_filter)

    def to_wire(self, binary: bool = False) -> dict:
        wire = {"op": self.kind,
                "points": [{"id": p.id, "vector": _wire_vectors(p.vectors, binary)} for p in self.points]}
        if self.update_filter is not None:
            wire["update_filter"] = self.update_filter
        return wire

    def validate_against(self, config: CollectionConfig) -> None:
        for p in self.points:
            _check_vectors(p.vectors, config)


@dataclass
class DeleteVectors(Operation):
    selector: PointsSelector
    names: list
    kind = "delete_vectors"

    @staticmethod
    def from_body(body) -> "DeleteVectors":
        body = _require_dict(body, "request body")
        names = body.get("vector", body.get("vectors"))
        if names is None:
            raise BadRequest("Format error in JSON body: missing field `vector`")
        names = _require_list(names, "vector")
        if not all(isinstance(n, str) for n in names):
            raise BadRequest("Format error in JSON body: vector must be a list of vector names")
        if not names:
            raise Unprocessable("Validation error in JSON body: [vector: must specify vector names to delete]")
        return DeleteVectors(PointsSelector.from_body(body, "delete_vectors"), list(dict.fromkeys(names)))

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.selector.to_wire(), "vector": self.names}

    def validate_against(self, config: CollectionConfig) -> None:
        for name in self.names:
            config.params(name)


@dataclass
class SetPayload(Operation):
    selector: PointsSelector
    payload: dict
    key: str | None = None
    kind = "set_payload"

    @staticmethod
    def from_body(body) -> "SetPayload":
        body = _require_dict(body, "request body")
        if body.get("payload") is None:
            raise BadRequest("Format error in JSON body: missing field `payload`")
        payload = _require_dict(body.get("payload"), "payload")
        key = body.get("key")
        if key is not None and not isinstance(key, str):
            raise BadRequest("Format error in JSON body: key must be a string")
        return SetPayload(PointsSelector.from_body(body, "set_payload"), payload, key)

    def to_wire(self, binary: bool = False) -> dict:
        out = {"op": self.kind, **self.selector.to_wire(), "payload": self.payload}
        if self.key is not None:
            out["key"] = self.key
        return out


@dataclass
class OverwritePayload(Operation):
    selector: PointsSelector
    payload: dict
    kind = "overwrite_payload"

    @staticmethod
    def from_body(body) -> "OverwritePayload":
        body = _require_dict(body, "request body")
        if body.get("payload") is None:
            raise BadRequest("Format error in JSON body: missing field `payload`")
        payload = _require_dict(body.get("payload"), "payload")
        return OverwritePayload(PointsSelector.from_body(body, "overwrite_payload"), payload)

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.selector.to_wire(), "payload": self.payload}


@dataclass
class DeletePayload(Operation):
    selector: PointsSelector
    keys: list
    kind = "delete_payload"

    @staticmethod
    def from_body(body) -> "DeletePayload":
        body = _require_dict(body, "request body")
        if body.get("keys") is None:
            raise BadRequest("Format error in JSON body: missing field `keys`")
        keys = _require_list(body.get("keys"), "keys")
        if not all(isinstance(k, str) for k in keys):
            raise BadRequest("Format error in JSON body: keys must be a list of strings")
        return DeletePayload(PointsSelector.from_body(body, "delete_payload"), keys)

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.selector.to_wire(), "keys": self.keys}


@dataclass
class ClearPayload(Operation):
    selector: PointsSelector
    kind = "clear_payload"

    @staticmethod
    def from_body(body) -> "ClearPayload":
        body = _require_dict(body, "request body")
        return ClearPayload(PointsSelector.from_body(body, "clear_payload"))

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.selector.to_wire()}


@dataclass
class DeletePoints(Operation):
    selector: PointsSelector
    kind = "delete"

    @staticmethod
    def from_body(body) -> "DeletePoints":
        body = _require_dict(body, "request body")
        return DeletePoints(PointsSelector.from_body(body, "delete"))

    def to_wire(self, binary: bool = False) -> dict:
        return {"op": self.kind, **self.selector.to_wire()}


# The names a /points/batch request uses for its operations, which are also the
# WAL kinds, so a batch record nests ordinary operation bodies.
BATCHABLE = {cls.kind: cls for cls in (Upsert, UpdateVectors, DeleteVectors, SetPayload,
                                        OverwritePayload, DeletePayload, ClearPayload, DeletePoints)}


@dataclass
class Batch(Operation):
    operations: list
    kind = "batch"

    @staticmethod
    def from_body(body) -> "Batch":
        body = _require_dict(body, "request body")
        if body.get("operations") is None:
            raise BadRequest("Format error in JSON body: missing field `operations`")
        ops = []
        for i, item in enumerate(_require_list(body.get("operations"), "operations")):
            item = _require_dict(item, f"operations[{i}]")
            if len(item) != 1:
                raise BadRequest(f"Format error in JSON body: operations[{i}] must have exactly one operation key")
            (name, inner), = item.items()
            cls = BATCHABLE.get(name)
            if cls is None:
                raise BadRequest(f"Format error in JSON body: operations[{i}]: unknown variant `{name}`, "
                                 f"expected one of {', '.join(f'`{k}`' for k in BATCHABLE)}")
            ops.append(cls.from_body(inner))
        return Batch(ops)

    def to_wire(self, binary: bool = False) -> dict:
        nested = []
        for op in self.operations:
            body = op.to_wire(binary)
            body.pop("op")
            nested.append({op.kind: body})
        return {"op": self.kind, "operations": nested}

    def validate_against(self, config: CollectionConfig) -> None:
        for op in self.operations:
            op.validate_against(config)


KINDS = {cls.kind: cls for cls in (CreateCollection, DeleteCollection, CreateFieldIndex, DeleteFieldIndex,
                                    Batch, *BATCHABLE.values())}
KINDS["delete_points"] = DeletePoints


@dataclass
class Command:
    """An operation addressed to a collection: what one WAL record carries."""
    collection: str
    op: Operation


def from_wire(value: dict) -> Operation:
    """Decode a WAL value into an operation; raises BadRequest for anything invalid."""
    value = _require_dict(value, "record value")
    kind = value.get("op")
    cls = KINDS.get(kind)
    if cls is None:
        raise BadRequest(f"unknown operation kind {kind!r}")
    body = {k: v for k, v in value.items() if k != "op"}
    return cls.from_body(body)
