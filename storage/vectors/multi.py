"""Multivectors (late interaction, ColBERT-style): a point holds a matrix, one row per
token, and is scored against a query matrix with MaxSim: for each query row the best
similarity among the point's rows, summed. Scanned exactly: a MaxSim over many rows
has no index in pointlog, and is mostly used to rescore prefetched candidates.

Similarities are the ones Qdrant uses inside MaxSim (qdrant-client's local mode
reproduces them): the dot product for Cosine (rows stored unit-length) and Dot; for
Euclid the negated squared distance, for Manhattan the negated L1 distance, whose
summed maxima become the score as sqrt(|sum|) and |sum| (smaller is better).
"""
import numpy as np

from storage.vectors.elements import COSINE_RAW, convert, kernel


def prepare(matrix: np.ndarray, distance: str, datatype: str | None = None) -> np.ndarray:
    if distance == "Cosine" or datatype is not None:
        return np.stack([convert(row, distance, datatype) for row in matrix])
    return matrix.astype(np.float32, copy=False)


def max_sim(query: np.ndarray, doc: np.ndarray, distance: str) -> float:
    """The MaxSim score; ``distance`` is the store's scoring kernel (storage/vectors/elements.py)."""
    raw = max_sim_raw(query, doc, distance)
    if distance == "Euclid":
        return float(np.sqrt(np.abs(raw)))
    return float(np.abs(raw)) if distance == "Manhattan" else raw


def max_sim_raw(query: np.ndarray, doc: np.ndarray, distance: str) -> float:
    """MaxSim before the distance's postprocessing: bigger is better for every distance."""
    if distance in ("Cosine", "Dot"):
        return float(np.sum(np.max(query @ doc.T, axis=-1)))
    if distance == COSINE_RAW:
        norms = np.einsum("ij,ij->i", query, query)[:, np.newaxis] * np.einsum("ij,ij->i", doc, doc)
        with np.errstate(invalid="ignore", divide="ignore"):
            sims = (query @ doc.T) / np.sqrt(norms)
        sims[norms == 0] = 0.0
        return float(np.sum(np.max(sims.astype(np.float32), axis=-1)))
    diff = doc[np.newaxis, :, :] - query[:, np.newaxis, :]
    if distance == "Euclid":
        sims = -np.square(diff, dtype=np.float32).sum(axis=-1, dtype=np.float32)
    else:
        sims = -np.abs(diff, dtype=np.float32).sum(axis=-1, dtype=np.float32)
    return float(np.sum(np.max(sims, axis=-1)))


def to_bytes(matrix: np.ndarray) -> bytes:
    return len(matrix).to_bytes(4, "big") + matrix.astype("<f4", copy=False).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    rows = int.from_bytes(raw[:4], "big")
    flat = np.frombuffer(raw, dtype="<f4", offset=4)
    return flat.reshape(rows, len(flat) // rows if rows else 0)


class MultiStore:
    """The multivectors of one collection and vector name."""

    def __init__(self, dim: int, distance: str, datatype: str | None = None):
        self.dim = dim
        self.distance = distance
        self.datatype = datatype
        self.kernel = kernel(distance, datatype)
        self.vectors: dict = {}  # point key -> matrix (rows x dim), prepared

    def __len__(self) -> int:
        return len(self.vectors)

    def __contains__(self, key: bytes) -> bool:
        return key in self.vectors

    def get(self, key: bytes) -> np.ndarray | None:
        return self.vectors.get(key)

    def prepare(self, matrix: np.ndarray) -> np.ndarray:
        return prepare(matrix, self.distance, self.datatype)

    def put(self, key: bytes, matrix: np.ndarray) -> None:
        self.vectors[key] = matrix

    def remove(self, key: bytes) -> None:
        self.vectors.pop(key, None)
