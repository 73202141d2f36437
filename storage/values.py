"""Qdrant's JSON values that operations are made of: vectors, points (listed or
columnar), filters. Both front doors and the WAL codec read them through here, so a
value means the same wherever it comes from.

Errors carry the Qdrant server's wording (``Format error in JSON body: ...`` for a
value of the wrong shape, ``Validation error ...`` for one its validator refuses);
the WAL codec rewords them for records (streams/codec.py).
"""
import numpy as np

from storage.config import DEFAULT_VECTOR
from storage.errors import BadRequest, Unprocessable
from storage.filters import compile_filter
from storage.ids import parse_id
from storage.operations import PointStruct, PointVectors
from storage.vectors.sparse import SparseVector, is_sparse, parse_sparse


def require_dict(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be a JSON object")
    return value


def require_list(value, where: str) -> list:
    if not isinstance(value, list):
        raise BadRequest(f"Format error in JSON body: {where} must be a list")
    return value


def parse_filter(raw, where: str) -> dict:
    """A filter kept as JSON (it is evaluated when applied), checked now."""
    raw = require_dict(raw, where)
    compile_filter(raw, where)
    return raw


def parse_payload(value, where: str) -> dict | None:
    return None if value is None else require_dict(value, where)


def parse_vector(value, where: str):
    """A dense vector from JSON floats, or little-endian float32 bytes from the WAL; or
    a sparse vector ``{indices, values}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        if len(value) % 4:
            raise BadRequest(f"Format error in JSON body: {where} has a partial float32")
        return np.frombuffer(value, dtype="<f4")
    if isinstance(value, np.ndarray):  # decoded straight from JSON text (api/rest/vector_json.py)
        return _finite(value, where)
    if is_sparse(value):
        return parse_sparse(value, where)
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
            return _parse_multi(value, where)
        if not kinds <= {int, float}:
            raise BadRequest(f"Format error in JSON body: {where} must be a list of numbers")
        try:
            arr = np.asarray(value, dtype=np.float64)
        except OverflowError:  # an integer beyond any float
            raise BadRequest(f"Format error in JSON body: {where} has a value out of float32 range") from None
    with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below
        arr = arr.astype(np.float32)
    return _finite(arr, where)


def _finite(arr: np.ndarray, where: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise BadRequest(f"Format error in JSON body: {where} has a value out of float32 range")
    return arr


def _parse_multi(value: list, where: str) -> np.ndarray:
    """A multivector: a non-empty list of non-empty vectors of one dimension."""
    if not all(isinstance(row, list) for row in value):
        raise BadRequest(f"Format error in JSON body: {where} must be a list of numbers or of vectors")
    rows = [parse_vector(row, f"{where}[{i}]") for i, row in enumerate(value)]
    if any(row.ndim != 1 for row in rows):
        raise BadRequest(f"Format error in JSON body: {where} nests vectors too deep")
    if any(len(row) == 0 for row in rows):
        raise BadRequest(f"Wrong input: All vectors of a multivector must be non-empty ({where})")
    if len({len(row) for row in rows}) != 1:
        raise BadRequest(f"Wrong input: all vectors of the multivector {where} must have the same dimension")
    return np.stack(rows)


def _may_hold_bools(arr: np.ndarray) -> bool:
    """A JSON true/false among numbers shows up as an exact 1 or 0."""
    return arr.dtype.kind != "f" or bool(((arr == 0.0) | (arr == 1.0)).any())


def parse_vectors(value, where: str) -> dict:
    """``[..]`` is the unnamed vector; ``{name: [..]}`` names any subset."""
    if isinstance(value, dict) and not is_sparse(value):
        return {str(name): parse_vector(v, f"{where}.{name}") for name, v in value.items()}
    if is_sparse(value):
        raise BadRequest(f"Wrong input: {where} is a sparse vector without a name; sparse vectors are "
                         "always named: {\"NAME\": {\"indices\": [...], \"values\": [...]}}")
    return {DEFAULT_VECTOR: parse_vector(value, where)}


def _parse_column(col: list, where: str):
    """A batch column in one numpy conversion when it is a plain float matrix (the
    common case, several times cheaper than a conversion per row); otherwise row by
    row, with the exact per-vector checks and messages."""
    if isinstance(col, np.ndarray):  # a float32 matrix decoded straight from JSON text
        if np.isfinite(col).all():
            return list(col)
        return [parse_vector(row, f"{where}[{i}]") for i, row in enumerate(col)]  # names the row
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


def points_from_list(raw, with_payload: bool = True, vector_required: bool = False) -> list:
    """``points: [{id, vector(s), payload}]`` as PointStructs."""
    points = []
    for i, p in enumerate(require_list(raw, "points")):
        p = require_dict(p, f"points[{i}]")
        if "id" not in p:
            raise BadRequest(f"Format error in JSON body: points[{i}]: missing field `id`")
        vec = p.get("vector", p.get("vectors"))
        if vec is None and vector_required:
            raise BadRequest(f"Format error in JSON body: points[{i}]: missing field `vector`")
        vectors = {} if vec is None else parse_vectors(vec, f"points[{i}].vector")
        payload = parse_payload(p.get("payload"), f"points[{i}].payload") if with_payload else None
        points.append(PointStruct(parse_id(p["id"]), vectors, payload))
    return points


def point_vectors_from_list(raw) -> list:
    """``points: [{id, vector(s)}]`` of an update_vectors request."""
    return [PointVectors(p.id, p.vectors) for p in points_from_list(raw, with_payload=False, vector_required=True)]


def _require_column(value, where: str):
    return value if isinstance(value, np.ndarray) else require_list(value, where)


def points_from_batch(batch) -> list:
    """The columnar ``batch: {ids, vectors, payloads}`` form as PointStructs."""
    batch = require_dict(batch, "batch")
    ids = [parse_id(i) for i in require_list(batch.get("ids"), "batch.ids")]
    n = len(ids)
    raw_vectors = batch.get("vectors")
    columns: dict = {}
    if isinstance(raw_vectors, dict):
        for name, col in raw_vectors.items():
            columns[str(name)] = _require_column(col, f"batch.vectors.{name}")
    elif raw_vectors is not None:
        columns[DEFAULT_VECTOR] = _require_column(raw_vectors, "batch.vectors")
    for name, col in columns.items():
        if len(col) != n:
            raise Unprocessable(f"Validation error in JSON body: [batch: number of ids and vectors must be "
                                f"equal ({n} != {len(col)})]")
    payloads = batch.get("payloads")
    if payloads is not None:
        payloads = require_list(payloads, "batch.payloads")
        if len(payloads) != n:
            raise Unprocessable(f"Validation error in JSON body: [batch: number of ids and payloads must be "
                                f"equal ({n} != {len(payloads)})]")
    parsed = {name: _parse_column(col, f"batch.vectors.{name}" if name else "batch.vectors")
              for name, col in columns.items()}
    points = []
    for i, pid in enumerate(ids):
        vectors = {name: col[i] for name, col in parsed.items() if col[i] is not None}
        payload = parse_payload(payloads[i], f"batch.payloads[{i}]") if payloads is not None else None
        points.append(PointStruct(pid, vectors, payload))
    return points


def vectors_to_json(vectors: dict, binary: bool):
    """A point's vectors as written: the unnamed one as a plain vector, else by name;
    float32 bytes (msgpack records) or lists of floats (JSON); sparse ones as
    ``{indices, values}``."""
    def enc(a):
        if isinstance(a, SparseVector):
            return a.to_json()
        if a.ndim == 2:  # a multivector: its rows, as lists (bytes would lose the shape)
            return a.tolist()
        return a.astype("<f4", copy=False).tobytes() if binary else a.tolist()
    if set(vectors) == {DEFAULT_VECTOR}:
        return enc(vectors[DEFAULT_VECTOR])
    return {n: enc(v) for n, v in vectors.items()}
