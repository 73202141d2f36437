"""In-memory dense vectors of one collection and vector name, one slot per point.

Slots are dense so numpy can scan them exactly and Annoy (int32 item ids sized by
the largest id) can index them. A freed slot is reused; ``keys[slot]`` is None
while it is free.
"""
import numpy as np

EPSILON = np.float32(1.1920929e-7)  # f32::EPSILON, Qdrant's threshold for normalizing


def normalize(vec: np.ndarray) -> np.ndarray:
    """Cosine vectors are stored unit-length, as Qdrant does at insert time."""
    norm = np.linalg.norm(vec)
    if norm > EPSILON:
        return (vec / norm).astype(np.float32)
    return vec.astype(np.float32, copy=True)


class VectorStore:
    def __init__(self, dim: int, distance: str, capacity: int = 1024):
        self.dim = dim
        self.distance = distance
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.keys: list = [None] * capacity
        self.slot_of: dict = {}
        self._free: list = []
        self._next = 0

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, key: bytes) -> bool:
        return key in self.slot_of

    def prepare(self, vec: np.ndarray) -> np.ndarray:
        return normalize(vec) if self.distance == "Cosine" else vec.astype(np.float32, copy=False)

    def put(self, key: bytes, vec: np.ndarray) -> None:
        """Store an already prepared vector."""
        slot = self.slot_of.get(key)
        if slot is None:
            slot = self._allocate()
            self.slot_of[key] = slot
            self.keys[slot] = key
            self.alive[slot] = True
        self.matrix[slot] = vec

    def remove(self, key: bytes) -> None:
        slot = self.slot_of.pop(key, None)
        if slot is not None:
            self.keys[slot] = None
            self.alive[slot] = False
            self._free.append(slot)

    def get(self, key: bytes) -> np.ndarray | None:
        slot = self.slot_of.get(key)
        return None if slot is None else self.matrix[slot]

    def _allocate(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next == len(self.keys):
            self._grow()
        slot = self._next
        self._next += 1
        return slot

    def _grow(self) -> None:
        capacity = len(self.keys) * 2
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        matrix[: len(self.keys)] = self.matrix
        alive = np.zeros(capacity, dtype=bool)
        alive[: len(self.keys)] = self.alive
        self.matrix, self.alive = matrix, alive
        self.keys.extend([None] * (capacity - len(self.keys)))

    @property
    def used(self) -> int:
        """Slots handed out so far (the scan range; free slots inside are masked off)."""
        return self._next
