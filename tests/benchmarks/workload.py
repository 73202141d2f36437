"""The benchmark workload: clustered 128-d float32 vectors with small payloads,
the same for pointlog and the peer."""
import numpy as np

DIM = 128
BATCH = 256


def vectors(n: int, seed: int = 7, clusters: int = 100) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, DIM)).astype(np.float32)
    labels = rng.integers(0, clusters, size=n)
    return (centers[labels] + 0.35 * rng.normal(size=(n, DIM))).astype(np.float32)


def payload(i: int) -> dict:
    return {"category": f"c{i % 10}", "price": (i * 37) % 1000 / 10.0, "in_stock": i % 3 != 0}


def queries(n: int, seed: int = 11) -> np.ndarray:
    return vectors(n, seed=seed)


def exact_top(data: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list:
    """Cosine ground truth (the benchmark collections use Cosine)."""
    norms = np.linalg.norm(data, axis=1)
    scores = data @ (query / np.linalg.norm(query)) / np.where(norms == 0, 1, norms)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return list(np.argsort(-scores, kind="stable")[:k])


def percentile(samples: list, p: float) -> float:
    return float(np.percentile(np.asarray(samples), p)) if samples else float("nan")
