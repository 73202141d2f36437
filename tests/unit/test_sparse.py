"""The sparse store's inverted index against brute force, under random puts and removes."""
import math
import random

import numpy as np

from storage.vectors.sparse import SparseStore, SparseVector, idf, parse_sparse


def vec(rng: random.Random) -> SparseVector:
    indices = rng.sample(range(30), rng.randint(0, 8))
    return parse_sparse({"indices": indices, "values": [rng.uniform(-1, 2) for _ in indices]}, "v")


def brute(vectors: dict, query: SparseVector, modifier: str) -> dict:
    n = len(vectors)
    df = {}
    for v in vectors.values():
        for i in v.indices.tolist():
            df[i] = df.get(i, 0) + 1
    out = {}
    for key, v in vectors.items():
        shared = set(v.indices.tolist()) & set(query.indices.tolist())
        if not shared:
            continue
        values = dict(zip(v.indices.tolist(), v.values.tolist()))
        out[key] = sum(q * (idf(df[i], n) if modifier == "idf" else 1.0) * values[i]
                       for i, q in zip(query.indices.tolist(), query.values.tolist()) if i in shared)
    return out


def test_the_inverted_index_scores_like_brute_force():
    rng = random.Random(3)
    for modifier in ("none", "idf"):
        store, truth = SparseStore(modifier), {}
        for step in range(600):
            key = bytes([rng.randrange(40)])
            if rng.random() < 0.3:
                store.remove(key)
                truth.pop(key, None)
            else:
                v = vec(rng)
                store.put(key, v)
                truth[key] = v
            if step % 50 == 0:
                q = vec(rng)
                got, want = store.scores(q), brute(truth, q, modifier)
                assert got.keys() == want.keys()
                assert all(math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-12) for k in got)
        rebuilt = SparseStore(modifier)
        for key, v in truth.items():
            rebuilt.put(key, v)
        def by_key(s: SparseStore) -> dict:  # slots are the store's own numbering
            return {i: {s.keys[slot]: v for slot, v in posting.items()} for i, posting in s.postings.items()}
        assert by_key(rebuilt) == by_key(store)  # derived state only: a rebuild is the same
        q = vec(rng)
        assert rebuilt.scores(q) == store.scores(q)


def test_a_sparse_vector_is_sorted_once_and_round_trips():
    v = parse_sparse({"indices": [9, 1, 4], "values": [0.9, 0.1, 0.4]}, "v")
    assert v.indices.tolist() == [1, 4, 9] and np.allclose(v.values, [0.1, 0.4, 0.9])
    assert SparseVector.from_bytes(v.to_bytes()) == v
    empty = parse_sparse({"indices": [], "values": []}, "v")
    assert SparseVector.from_bytes(empty.to_bytes()) == empty and len(empty) == 0
