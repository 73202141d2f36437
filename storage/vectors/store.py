"""In-memory dense vectors of one collection and vector name, one slot per point.

Slots are dense so numpy can scan them exactly and Annoy (int32 item ids sized by
the largest id) can index them. A freed slot is reused; ``keys[slot]`` is None
while it is free.

Change tracking for the Annoy index (storage/vectors/annoy_index.py): every ``put`` bumps the
store's ``generation`` and stamps the slot with it. An index built from a snapshot
taken at generation G can trust a slot only while ``stamp[slot] <= G`` and the slot
is alive; every slot stamped later is the *delta*, scanned exactly. That costs one
integer store per put on the apply path and needs no knowledge of offsets.
"""
import numpy as np

from storage.vectors.elements import convert, kernel


class VectorStore:
    def __init__(self, dim: int, distance: str, capacity: int = 1024, datatype: str | None = None):
        self.dim = dim
        self.distance = distance
        self.datatype = datatype
        self.kernel = kernel(distance, datatype)
        self.matrix = np.zeros((capacity, dim), dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.stamp = np.zeros(capacity, dtype=np.int64)  # generation of the slot's last put
        self.keys: list = [None] * capacity
        self.slot_of: dict = {}
        self._free: list = []
        self._next = 0
        self.generation = 0  # number of puts so far
        self.removals = 0  # number of removes so far; with generation, the changes since a snapshot
        # Set by storage.vectors.annoy_index: the loaded Annoy index over a snapshot, and whether a
        # new one is being built. Searches read ``index``; the manager swaps it.
        self.index = None
        self.building = False
        self._cache: dict = {}  # (what, generation, removals) -> slots, reused while nothing changed

    def __len__(self) -> int:
        return len(self.slot_of)

    def __contains__(self, key: bytes) -> bool:
        return key in self.slot_of

    def prepare(self, vec: np.ndarray) -> np.ndarray:
        """A vector, stored or queried, as Qdrant scores it (storage/vectors/elements.py)."""
        return convert(vec, self.distance, self.datatype)

    def put(self, key: bytes, vec: np.ndarray) -> None:
        """Store an already prepared vector."""
        slot = self.slot_of.get(key)
        if slot is None:
            slot = self._allocate()
            self.slot_of[key] = slot
            self.keys[slot] = key
            self.alive[slot] = True
        self.generation += 1
        self.stamp[slot] = self.generation
        self.matrix[slot] = vec

    def load(self, keys: list, rows: np.ndarray) -> None:
        """Fill an empty store with prepared rows, one per key, in order: what
        ``put`` of each in turn would leave (slots 0.., stamps 1..), in bulk."""
        if self.slot_of:
            raise RuntimeError("load fills an empty store")
        n = len(keys)
        capacity = len(self.keys)
        while capacity < n:
            capacity *= 2
        if capacity != len(self.keys):
            self.alive = np.zeros(capacity, dtype=bool)
            self.stamp = np.zeros(capacity, dtype=np.int64)
            self.keys = [None] * capacity
        base = rows.base
        if (isinstance(base, np.ndarray) and base.dtype == np.float32 and base.shape == (capacity, self.dim)
                and base.flags.c_contiguous and rows.ctypes.data == base.ctypes.data):
            self.matrix = base  # rows are the first n rows of a matrix made for this store: adopt it
        else:
            if self.matrix.shape[0] != capacity:
                self.matrix = np.zeros((capacity, self.dim), dtype=np.float32)
            self.matrix[:n] = rows
        self.alive[:n] = True
        self.stamp[:n] = np.arange(1, n + 1, dtype=np.int64)
        self.keys[:n] = keys
        self.slot_of = dict(zip(keys, range(n)))
        self._next = n
        self.generation = n

    def remove(self, key: bytes) -> None:
        slot = self.slot_of.pop(key, None)
        if slot is not None:
            self.keys[slot] = None
            self.alive[slot] = False
            self._free.append(slot)
            self.removals += 1

    def get(self, key: bytes) -> np.ndarray | None:
        slot = self.slot_of.get(key)
        return None if slot is None else self.matrix[slot]

    def mark_changed(self, keys) -> None:
        """Stamp these keys' slots as changed now, as if put again (the index loaded at
        startup is older than them)."""
        slots = [self.slot_of[k] for k in keys if k in self.slot_of]
        if slots:
            self.generation += 1
            self.stamp[np.asarray(slots, dtype=np.int64)] = self.generation

    def alive_slots(self) -> np.ndarray:
        """Slots holding a vector, ascending."""
        return self.cached("alive", lambda: np.flatnonzero(self.alive[: self._next]))

    def changed_since(self, generation: int) -> np.ndarray:
        """Alive slots put after ``generation``: the delta of an index built then."""
        def compute():
            used = self._next
            return np.flatnonzero((self.stamp[:used] > generation) & self.alive[:used])
        return self.cached(("changed", generation), compute)

    def changes_since(self, generation: int, removals: int) -> int:
        """Puts and removes since a snapshot: what a rebuild would catch up on."""
        return (self.generation - generation) + (self.removals - removals)

    def cached(self, what, compute) -> np.ndarray:
        """A slot array derived from the store, memoized until the next put or remove;
        ``what`` must name everything else it depends on. Callers must not modify it."""
        key = (what, self.generation, self.removals)
        found = self._cache.get(key)
        if found is None:
            found = self._remember(key, compute())
        return found

    def _remember(self, key: tuple, value):
        """Memoize under a key ending in (generation, removals), dropping what an
        earlier generation left (gathered rows are large)."""
        now = key[-2:]
        for old in [k for k in self._cache if k[-2:] != now]:
            del self._cache[old]
        if len(self._cache) > 8:
            self._cache.clear()
        self._cache[key] = value
        return value

    def rows(self, slots: np.ndarray) -> np.ndarray:
        """``matrix[slots]``. Gathering the rows of a selective filter's slots is the
        largest cost of scoring them, and the next query with the same filter gets the
        very slot array ``cached`` holds: its rows are kept beside it, until the next
        put or remove, while they are at most an eighth of the store."""
        key = ("rows", id(slots), self.generation, self.removals)
        hit = self._cache.get(key)
        if hit is not None and hit[0] is slots:
            return hit[1]
        rows = self.matrix[slots]
        if len(slots) <= self._next // 8 and any(found is slots for found in self._cache.values()):
            self._remember(key, (slots, rows))  # the slots too: the key's id() stays theirs
        return rows

    def _allocate(self) -> int:
        if self._free:
            return self._free.pop()
        if self._next == len(self.keys):
            self._grow()
        slot = self._next
        self._next += 1
        return slot

    def _grow(self) -> None:
        # New arrays rather than resizing in place: a snapshot being copied in a
        # thread keeps reading the old ones; later writes are stamped, so it never
        # needs them.
        capacity = len(self.keys) * 2
        matrix = np.zeros((capacity, self.dim), dtype=np.float32)
        matrix[: len(self.keys)] = self.matrix
        alive = np.zeros(capacity, dtype=bool)
        alive[: len(self.keys)] = self.alive
        stamp = np.zeros(capacity, dtype=np.int64)
        stamp[: len(self.keys)] = self.stamp
        self.matrix, self.alive, self.stamp = matrix, alive, stamp
        self.keys.extend([None] * (capacity - len(self.keys)))

    @property
    def used(self) -> int:
        """Slots handed out so far (the scan range; free slots inside are masked off)."""
        return self._next
