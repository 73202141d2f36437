"""Vector datatypes: the element type a dense vector (or each row of a multivector) is
stored as, and so the values it is scored with.

Qdrant converts a vector to its collection's element type once, after the distance's
preprocessing, and converts every query the same way before scoring:
- ``float32``: as given (Cosine: normalized);
- ``float16``: Cosine vectors are normalized in float32 first, then every component is
  rounded to the nearest half-precision value;
- ``uint8``: every component is cast as Rust's ``f32 as u8`` does (truncated toward zero,
  saturated to 0..255, NaN to 0). Cosine vectors are *not* normalized: a byte cannot hold
  a unit vector, so the cosine is computed at scoring time instead (``COSINE_RAW``).

pointlog keeps the converted values in its float32 matrices: scores and returned vectors
are Qdrant's, the memory saving of the narrower types is not taken (see README).
"""
import numpy as np

EPSILON = np.float32(1.1920929e-7)  # f32::EPSILON, Qdrant's threshold for normalizing
COSINE_RAW = "CosineRaw"  # the scoring kernel of uint8 Cosine vectors: cosine of unnormalized rows


def normalize(vec: np.ndarray) -> np.ndarray:
    """Cosine vectors are stored unit-length, as Qdrant does at insert time."""
    norm = np.sqrt(vec.dot(vec))  # what np.linalg.norm computes for a real vector, without its overhead
    if norm > EPSILON:
        out = vec / norm
        return out if out.dtype == np.float32 else out.astype(np.float32)
    return vec.astype(np.float32, copy=True)


def convert(vec: np.ndarray, distance: str, datatype: str | None) -> np.ndarray:
    """A vector (1-d) as Qdrant stores it: preprocessed for the distance, then in the
    element type; returned as float32."""
    if datatype == "uint8":
        with np.errstate(invalid="ignore"):
            return np.trunc(np.clip(np.nan_to_num(vec, nan=0.0), 0.0, 255.0)).astype(np.float32)
    vec = normalize(vec) if distance == "Cosine" else vec.astype(np.float32, copy=False)
    if datatype == "float16":
        with np.errstate(over="ignore"):  # beyond half range becomes inf, as f16::from_f32 does
            return vec.astype(np.float16).astype(np.float32)
    return vec


def kernel(distance: str, datatype: str | None) -> str:
    """How stored rows are scored: the distance, except uint8 Cosine rows, which are
    kept unnormalized and need their norms at scoring time."""
    return COSINE_RAW if distance == "Cosine" and datatype == "uint8" else distance


def cosine_raw(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Qdrant's cosine of byte vectors: dot / sqrt(|a|^2 * |b|^2), 0 when either is zero."""
    dots = np.einsum("ij,j->i", rows, query)
    norms = np.einsum("ij,ij->i", rows, rows) * np.float32(np.dot(query, query))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = dots / np.sqrt(norms)
    out[norms == 0] = 0.0
    return out.astype(np.float32, copy=False)
