"""Collection configuration: vector names, sizes and distances.

An unnamed collection has exactly one vector, named ``""``; it is written and read
as a plain list. A named collection has a dict of vector names.
"""
from dataclasses import dataclass, field

from storage.errors import BadRequest, Unprocessable
from storage.strict_config import check_config, merged as merged_strict

DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
DATATYPES = ("float32", "float16", "uint8")
DEFAULT_VECTOR = ""


@dataclass(frozen=True)
class VectorParams:
    size: int
    distance: str
    # Storage hints of this vector (hnsw_config, quantization_config, on_disk), kept
    # and reported as given: pointlog keeps vectors in memory and scores them exactly.
    hints: dict = field(default_factory=dict)
    multivector: bool = False  # multivector_config {"comparator": "max_sim"}: a matrix per point
    # The element type vectors are stored as (storage/vectors/elements.py); None when the
    # body left it out, which Qdrant reports by leaving it out too.
    datatype: str | None = None

    def to_json(self) -> dict:
        multi = {"multivector_config": {"comparator": "max_sim"}} if self.multivector else {}
        datatype = {"datatype": self.datatype} if self.datatype is not None else {}
        return {"size": self.size, "distance": self.distance, **self.hints, **multi, **datatype}

    def with_hints(self, diff: dict) -> "VectorParams":
        hints = dict(self.hints)
        for key, value in diff.items():
            hints[key] = _merged(hints.get(key), value)
        return VectorParams(self.size, self.distance, hints, self.multivector, self.datatype)


@dataclass(frozen=True)
class SparseParams:
    modifier: str = "none"  # "idf": query weights scaled by inverse document frequency
    index: dict = field(default_factory=dict)  # Qdrant's index hints (on_disk, full_scan_threshold, datatype)

    def to_json(self) -> dict:
        out = {"modifier": self.modifier} if self.modifier != "none" else {}
        return {**out, **({"index": self.index} if self.index else {})}


MODIFIERS = ("none", "idf")


def _sparse_params(raw, where: str) -> SparseParams:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be an object")
    unknown = set(raw) - {"index", "modifier"}
    if unknown:
        raise BadRequest(f"Format error in JSON body: {where}: unknown field `{sorted(unknown)[0]}`")
    modifier = raw.get("modifier") or "none"
    if modifier not in MODIFIERS:
        raise BadRequest(f"Format error in JSON body: {where}.modifier: unknown variant `{modifier}`, "
                         "expected `none` or `idf`")
    index = raw.get("index") or {}
    if not isinstance(index, dict):
        raise BadRequest(f"Format error in JSON body: {where}.index must be an object")
    if index.get("datatype") not in (None, "float32"):
        raise BadRequest(f"Bad request: {where}.index.datatype is not supported by pointlog")
    return SparseParams(modifier, index)


@dataclass(frozen=True)
class CollectionConfig:
    vectors: dict  # name -> VectorParams
    named: bool
    extra: dict = field(default_factory=dict)  # accepted create-time settings, echoed back
    sparse: dict = field(default_factory=dict)  # name -> SparseParams

    @staticmethod
    def from_body(body) -> "CollectionConfig":
        if not isinstance(body, dict):
            raise BadRequest("Format error in JSON body: expected a JSON object")
        if body.get("sharding_method") not in (None, "auto"):
            raise BadRequest("Bad request: custom sharding is not supported by pointlog: every collection "
                             "has a single shard")
        check_settings(body)
        sparse = body.get("sparse_vectors") or {}
        if not isinstance(sparse, dict):
            raise BadRequest("Format error in JSON body: sparse_vectors must be an object")
        sparse = {str(name): _sparse_params(p, f"sparse_vectors.{name}") for name, p in sparse.items()}
        if DEFAULT_VECTOR in sparse:
            raise BadRequest("Wrong input: Sparse vector name cannot be empty")
        raw = body.get("vectors")
        if raw is None:  # sparse vectors only (or none at all)
            return CollectionConfig({}, True, _extra(body), sparse)
        if not isinstance(raw, dict):
            raise BadRequest("Format error in JSON body: vectors must be an object")
        if "size" in raw or "distance" in raw:
            return CollectionConfig({DEFAULT_VECTOR: _params(raw, "vectors")}, False, _extra(body), sparse)
        vectors = {}
        for name, params in raw.items():
            vectors[name] = _params(params, f"vectors.{name}")
        both = sorted(set(vectors) & set(sparse))
        if both:
            raise BadRequest(f"Wrong input: vector name `{both[0]}` is both a dense and a sparse vector")
        return CollectionConfig(vectors, True, _extra(body), sparse)

    def to_json(self) -> dict:
        """The create-collection body that reproduces this config."""
        body = dict(self.extra)
        if self.sparse:
            body["sparse_vectors"] = self.sparse_json()
        if self.named:
            body["vectors"] = {n: p.to_json() for n, p in self.vectors.items()}
        else:
            body["vectors"] = self.vectors[DEFAULT_VECTOR].to_json()
        return body

    def sparse_json(self) -> dict:
        return {n: p.to_json() for n, p in self.sparse.items()}

    def names(self) -> set:
        """Every vector name, dense and sparse."""
        return set(self.vectors) | set(self.sparse)

    def check_name(self, name: str) -> None:
        if name not in self.vectors and name not in self.sparse:
            raise BadRequest(f"Wrong input: Not existing vector name error: {name}")

    def vectors_json(self) -> dict:
        if self.named:
            return {n: p.to_json() for n, p in self.vectors.items()}
        return self.vectors[DEFAULT_VECTOR].to_json()

    def updated(self, diff: dict) -> "CollectionConfig":
        """The config after a PATCH: ``vectors`` diffs per name, ``params`` over the
        top-level settings, ``metadata`` merged key by key, the other sections merged."""
        vectors = dict(self.vectors)
        for name, hints in (diff.get("vectors") or {}).items():
            vectors[name] = self.params(name).with_hints(hints)
        extra = dict(self.extra)
        for key, value in (diff.get("params") or {}).items():
            extra[key] = value
        if diff.get("strict_mode_config") is not None:
            extra["strict_mode_config"] = merged_strict(extra.get("strict_mode_config"), diff["strict_mode_config"])
        if diff.get("quantization_config") is not None:  # a new quantization replaces the old one
            extra["quantization_config"] = diff["quantization_config"]
        for key in ("hnsw_config", "optimizers_config", "metadata"):
            if diff.get(key) is not None:
                merged = _merged(extra.get(key), diff[key])
                if merged in ({}, None):
                    extra.pop(key, None)
                else:
                    extra[key] = merged
        return CollectionConfig(vectors, self.named, extra, self.sparse)

    def params(self, name: str) -> VectorParams:
        try:
            return self.vectors[name]
        except KeyError:
            raise BadRequest(f"Wrong input: Not existing vector name error: {name}") from None


def _params(raw, where: str) -> VectorParams:
    if not isinstance(raw, dict):
        raise BadRequest(f"Format error in JSON body: {where} must be an object with size and distance")
    for name in ("size", "distance"):
        if raw.get(name) is None:
            raise BadRequest(f"Format error in JSON body: {where}: missing field `{name}`")
    size, distance = raw.get("size"), raw.get("distance")
    if isinstance(size, bool) or not isinstance(size, int):
        raise BadRequest(f"Format error in JSON body: {where}.size must be a positive integer")
    if size < 0:
        raise BadRequest(f"Format error in JSON body: {where}.size: invalid value: integer `{size}`, expected u64")
    if size < 1 or size > 65536:
        raise Unprocessable(f"Validation error in JSON body: [{where}.size: value {size} invalid, must be from 1 to 65536]")
    if distance not in DISTANCES:
        raise BadRequest(f"Format error in JSON body: {where}.distance: unknown variant `{distance}`, "
                         "expected one of `Cosine`, `Euclid`, `Dot`, `Manhattan`")
    datatype = raw.get("datatype")
    if datatype is not None and datatype not in DATATYPES:
        raise BadRequest(f"Format error in JSON body: {where}.datatype: unknown variant `{datatype}`, "
                         "expected one of `float32`, `uint8`, `float16`")
    multi = raw.get("multivector_config")
    if multi is not None and (not isinstance(multi, dict) or multi.get("comparator") != "max_sim" or len(multi) != 1):
        raise BadRequest(f"Format error in JSON body: {where}.multivector_config: expected "
                         "{\"comparator\": \"max_sim\"}")
    return VectorParams(size, distance, {k: raw[k] for k in _VECTOR_HINTS if raw.get(k) is not None},
                        multi is not None, datatype)


_VECTOR_HINTS = ("hnsw_config", "quantization_config", "on_disk", "memory")


def _merged(old, new):
    """A config diff, as Qdrant's ``merge_map``: an object's top-level keys replace the
    old ones (a null removes the key); anything else replaces the old value."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for key, value in new.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out
    return new


# Create-time fields pointlog does not implement yet: refused rather than ignored.
_NOT_YET = ("init_from",)
_COUNTS = ("shard_number", "replication_factor", "write_consistency_factor")


def check_settings(body: dict) -> None:
    for name in _NOT_YET:
        if body.get(name) is not None:
            raise BadRequest(f"Bad request: `{name}` is not supported by pointlog")
    for name in _COUNTS:
        _count(body.get(name), name, 1)
    optimizers = body.get("optimizers_config")
    if optimizers is not None:
        if not isinstance(optimizers, dict):
            raise BadRequest("Format error in JSON body: optimizers_config must be an object")
        _count(optimizers.get("indexing_threshold"), "optimizers_config.indexing_threshold", 0)
    if body.get("strict_mode_config") is not None:
        check_config(body["strict_mode_config"])
    hnsw = body.get("hnsw_config")
    if hnsw is not None:
        if not isinstance(hnsw, dict):
            raise BadRequest("Format error in JSON body: hnsw_config must be an object")
        _count(hnsw.get("ef_construct"), "hnsw_config.ef_construct", 4)


def _count(value, where: str, minimum: int) -> None:
    """A u32 setting: negative is a format error (serde), below ``minimum`` a validation one."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"Format error in JSON body: {where}: invalid type, expected u32")
    if value < 0 or value > 2**32 - 1:
        raise BadRequest(f"Format error in JSON body: {where}: invalid value: integer `{value}`, expected u32")
    if value < minimum:
        raise Unprocessable(f"Validation error in JSON body: [{where}: value {value} invalid, "
                            f"must be {minimum} or larger]")


_KEPT = ("hnsw_config", "optimizers_config", "wal_config", "quantization_config", "metadata",
         "on_disk_payload", "shard_number", "replication_factor", "write_consistency_factor", "strict_mode_config")


def _extra(body: dict) -> dict:
    extra = {k: body[k] for k in _KEPT if body.get(k) is not None}
    if "strict_mode_config" in extra:
        extra["strict_mode_config"] = check_config(extra["strict_mode_config"])
    return extra
