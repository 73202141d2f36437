"""The benchmark workload, the same for pointlog and the peer, shaped like what
Python clients send: clustered 128-d vectors serialized by ``json.dumps`` (every
float32 component as a full-precision double, ~18 characters), three payload
fields (an int, a float, a short string) and a declared payload index on the int
field that filtered search selects on."""
import json

import numpy as np

DIM = 128
BATCH = 256


RANK = 16  # intrinsic dimension of each cluster


def vectors(n: int, seed: int = 7, clusters: int = 100) -> np.ndarray:
    """Clustered vectors shaped like real embeddings: each cluster is a center plus a
    random 16-dimensional subspace, with a little isotropic noise on top.

    (Isotropic noise in all 128 dimensions would make every member of a cluster
    about equally near a query: no neighbourhood structure at all, the worst case
    for any approximate index. RESULTS.md reports that case separately.)
    """
    model = np.random.default_rng(1234)  # the same clusters for data and queries
    centers = model.normal(size=(clusters, DIM)).astype(np.float32)
    bases = (model.normal(size=(clusters, DIM, RANK)) / np.sqrt(RANK)).astype(np.float32)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, clusters, size=n)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 65536):  # bounded temporaries at 1M points
        lab = labels[start:start + 65536]
        z = rng.normal(size=(len(lab), RANK)).astype(np.float32)
        out[start:start + len(lab)] = (centers[lab] + 0.5 * np.einsum("ndr,nr->nd", bases[lab], z)
                                       + 0.05 * rng.normal(size=(len(lab), DIM)))
    return out


def isotropic(n: int, seed: int = 7, clusters: int = 100) -> np.ndarray:
    """The adversarial case: cluster centers plus isotropic noise in every dimension."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(size=(clusters, DIM)).astype(np.float32)
    return (centers[rng.integers(0, clusters, size=n)] + 0.35 * rng.normal(size=(n, DIM))).astype(np.float32)


def payload(i: int) -> dict:
    return {"group": i % 10, "price": (i * 37) % 1000 / 10.0, "label": f"item-{i % 97}"}


INDEXED_FIELD = {"field_name": "group", "field_schema": "integer"}  # declared before ingest
SEARCH_FILTER = {"must": [{"key": "group", "match": {"value": 3}}]}  # 10% of the points


def search_mask(n: int) -> np.ndarray:
    return np.arange(n) % 10 == 3


SET_FILTER = {"must": [{"key": "price", "range": {"lt": 60.0}}]}  # 60% (37 is prime to 1000)
DELETE_FILTER = {"must": [{"key": "group", "match": {"value": 9}}]}  # 10%


def dumps(body: dict) -> bytes:
    """A request body as Python clients write it: ``json.dumps`` of float lists."""
    return json.dumps(body).encode()


def batch_body(data: np.ndarray, start: int, ids: list) -> bytes:
    """A columnar upsert of ``ids`` (vectors from ``data[start:]``)."""
    rows = data[ids[0] - start:ids[-1] - start + 1].astype(np.float64).tolist()
    return dumps({"batch": {"ids": ids, "vectors": rows, "payloads": [payload(i) for i in ids]}})


def queries(n: int, seed: int = 11, isotropic_data: bool = False) -> np.ndarray:
    return (isotropic if isotropic_data else vectors)(n, seed=seed)


def exact_top(data: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list:
    """Cosine ground truth (the benchmark collections use Cosine)."""
    norms = np.linalg.norm(data, axis=1)
    scores = data @ (query / np.linalg.norm(query)) / np.where(norms == 0, 1, norms)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return list(np.argsort(-scores, kind="stable")[:k])


def percentile(samples: list, p: float) -> float:
    return float(np.percentile(np.asarray(samples), p)) if samples else float("nan")
