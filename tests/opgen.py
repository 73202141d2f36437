"""Seeded random Qdrant operations for differential tests.

Every operation is a qdrant-client call (method name + keyword arguments), so the same
call runs unchanged against pointlog over REST and against the client's local mode.
The generator only decides what to send; it never predicts results, that is the
oracle's job. It asks a callback for the ids a collection holds right now so that
most updates hit existing points and a controlled share names a missing one.
"""
from __future__ import annotations

import copy
import random
import uuid
from dataclasses import dataclass
from typing import Callable

from qdrant_client import models

D = models.Distance


@dataclass(frozen=True)
class Spec:
    """A collection layout: vector name -> (size, distance); ``""`` alone is the unnamed vector."""
    name: str
    vectors: dict

    @property
    def named(self) -> bool:
        return "" not in self.vectors

    @property
    def names(self) -> list:
        return list(self.vectors)

    def vectors_config(self):
        if not self.named:
            size, distance = self.vectors[""]
            return models.VectorParams(size=size, distance=distance)
        return {n: models.VectorParams(size=s, distance=d) for n, (s, d) in self.vectors.items()}


SPECS = (
    Spec("plain_cosine", {"": (4, D.COSINE)}),
    Spec("plain_euclid", {"": (3, D.EUCLID)}),
    Spec("named_three", {"dense": (4, D.DOT), "small": (2, D.MANHATTAN), "unit": (5, D.COSINE)}),
    Spec("named_two", {"m": (3, D.MANHATTAN), "e": (4, D.EUCLID)}),
)


@dataclass
class Call:
    method: str
    kwargs: dict
    label: str  # what the call exercises, for failure messages and the op mix report

    def args(self) -> dict:
        # Each side gets its own copy: local mode must not share objects with the
        # request the other side serializes.
        return copy.deepcopy(self.kwargs)

    def __str__(self) -> str:
        return f"{self.label}: {self.method}({_short(self.kwargs)})"


def _short(value, limit: int = 900) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------- ids

INT_IDS = list(range(0, 36)) + [2**63 - 1, 2**63, 2**64 - 1, 10**15 + 7]


class Ids:
    """The id pool of a run: integers (u64 edges included) and UUIDs, in every spelling."""

    def __init__(self, rng: random.Random, n_uuids: int = 24):
        self.rng = rng
        self.uuids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_uuids)]
        self.pool = INT_IDS + self.uuids

    def any(self):
        return self.rng.choice(self.pool)

    def spell(self, pid):
        """One of the spellings the server accepts for the same point."""
        if isinstance(pid, int):
            return pid
        u = uuid.UUID(pid)
        form = self.rng.randrange(7)
        if form == 0:
            return pid
        if form == 1:
            return pid.upper()
        if form == 2:
            return u.hex
        if form == 3:
            return u.hex.upper()
        if form == 4:
            return "{" + pid + "}"
        if form == 5:
            return "{" + pid.upper() + "}"
        return "urn:uuid:" + (pid if self.rng.random() < 0.5 else pid.upper())


# ---------------------------------------------------------------------------- payloads

COLORS = ["red", "green", "blue", "black", "Red"]
WORDS = ["alpha", "beta", "gamma", "delta", "red"]
KEYS = ["color", "n", "price", "flag", "tags", "nested", "arr", "note", "obj", "odd"]
# Values that a JSON -> msgpack -> JSON round trip could bend: i64/u64 edges, -0.0,
# huge and long floats, unicode, empty and dotted keys, nested arrays.
ODD = [2**63 - 1, -(2**63), 2**64 - 1, -0.0, 1e300, 0.1 + 0.2, 5e-324, "", "ünï ☃ 𝄞", "a\u0000b",
       [[1, 2], [3]], {"": 1, "a.b": 2, "ü": [None]}, [], {}]


def _value(rng: random.Random, key: str):
    r = rng.random()
    if key == "color":
        return rng.choice(COLORS) if r < 0.85 else rng.choice([None, 1, ["red", "blue"]])
    if key == "n":
        return rng.randint(-3, 12) if r < 0.8 else rng.choice([rng.randint(0, 9) + 0.5, [1, 5], "7"])
    if key == "price":
        return round(rng.uniform(0, 100), 2)
    if key == "flag":
        return rng.random() < 0.5 if r < 0.9 else rng.choice([0, None])
    if key == "tags":
        return rng.sample(COLORS + WORDS, rng.randint(0, 3)) if r < 0.9 else rng.choice([None, [None, "red"], "red"])
    if key == "nested":
        out = {"x": rng.randint(0, 5), "y": rng.choice(WORDS)}
        if rng.random() < 0.3:
            out["z"] = [rng.randint(0, 5) for _ in range(rng.randint(0, 3))]
        return out if r < 0.9 else rng.choice([None, 3, [out]])
    if key == "arr":
        return [{"x": rng.randint(0, 5), "s": rng.choice(WORDS)} for _ in range(rng.randint(0, 3))] \
            if r < 0.85 else rng.choice([[1, {"x": 2}], {"x": 1}, []])
    if key == "note":
        return None if r < 0.5 else rng.choice(WORDS)
    if key == "odd":
        return rng.choice(ODD) if r < 0.5 else None
    if key == "obj":
        return {"inner": {"leaf": rng.randint(0, 3)}} if r < 0.8 else rng.choice([{}, "flat"])
    raise KeyError(key)


def payload(rng: random.Random, max_keys: int = 7) -> dict:
    n = rng.randint(2, max_keys) if rng.random() < 0.9 else 0
    return {k: _value(rng, k) for k in rng.sample(KEYS, min(n, max_keys))}


SET_KEYS = [None, None, None, "nested", "nested.deep", "arr[]", "arr[0]", "arr[5]", "obj.inner",
            "obj.inner.leaf", "tags", "fresh.path", "color"]
DELETE_KEYS = ["color", "n", "nested.x", "nested.z", "arr[].x", "arr[0].s", "arr[0]", "tags", "missing",
               "nested", "obj.inner", "obj.inner.leaf", "tags[]", "note", "flag"]


def set_payload_body(rng: random.Random) -> dict:
    body = payload(rng, max_keys=3)
    if rng.random() < 0.35:  # null deletes the key it names
        body[rng.choice(KEYS)] = None
    if not body:
        body = {"color": rng.choice(COLORS)}
    return body


# ---------------------------------------------------------------------------- filters

def _match(rng: random.Random) -> models.FieldCondition:
    kind = rng.randrange(10)
    if kind == 0:
        return models.FieldCondition(key="color", match=models.MatchValue(value=rng.choice(COLORS)))
    if kind == 1:
        return models.FieldCondition(key="color", match=models.MatchAny(any=rng.sample(COLORS, 2)))
    if kind == 2:
        return models.FieldCondition(key="color", match=models.MatchExcept(**{"except": rng.sample(COLORS, 2)}))
    if kind == 3:
        return models.FieldCondition(key="n", match=models.MatchValue(value=rng.randint(0, 9)))
    if kind == 4:
        return models.FieldCondition(key="flag", match=models.MatchValue(value=rng.random() < 0.5))
    if kind == 5:
        return models.FieldCondition(key="tags", match=models.MatchAny(any=rng.sample(COLORS + WORDS, 2)))
    if kind == 6:
        return models.FieldCondition(key="nested.y", match=models.MatchValue(value=rng.choice(WORDS)))
    if kind == 7:
        return models.FieldCondition(key="arr[].x", match=models.MatchValue(value=rng.randint(0, 5)))
    if kind == 8:
        return models.FieldCondition(key="n", match=models.MatchAny(any=rng.sample(range(0, 10), 3)))
    return models.FieldCondition(key="arr[].s", match=models.MatchExcept(**{"except": rng.sample(WORDS, 2)}))


def _range(rng: random.Random) -> models.FieldCondition:
    key = rng.choice(["n", "price", "nested.x", "arr[].x", "nested.z", "obj.inner.leaf"])
    lo = rng.uniform(-2, 8) if key != "price" else rng.uniform(0, 80)
    bounds = {}
    if rng.random() < 0.7:
        bounds[rng.choice(["gt", "gte"])] = round(lo, 1)
    if rng.random() < 0.7 or not bounds:
        bounds[rng.choice(["lt", "lte"])] = round(lo + rng.uniform(1, 8 if key != "price" else 40), 1)
    return models.FieldCondition(key=key, range=models.Range(**bounds))


def condition(rng: random.Random, spec: Spec, ids: Ids, depth: int = 0):
    kind = rng.randrange(14 if depth < 1 else 11)
    if kind < 4:
        return _match(rng)
    if kind < 6:
        return _range(rng)
    if kind == 6:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=rng.choice(["tags", "color", "arr", "note", "nested.z"])))
    if kind == 7:
        return models.IsNullCondition(is_null=models.PayloadField(key=rng.choice(["note", "color", "tags", "flag"])))
    if kind == 8:
        return models.HasIdCondition(has_id=[ids.spell(ids.any()) for _ in range(rng.randint(1, 8))])
    if kind == 9:
        return models.HasVectorCondition(has_vector=rng.choice(spec.names))
    if kind == 10:
        return models.FieldCondition(key=rng.choice(["tags", "arr", "nested.z"]),
                                     values_count=models.ValuesCount(**{rng.choice(["gte", "lt", "gt", "lte"]): rng.randint(0, 3)}))
    if kind == 11:
        inner = models.Filter(must=[models.FieldCondition(key="x", match=models.MatchValue(value=rng.randint(0, 5))),
                                    models.FieldCondition(key="s", match=models.MatchValue(value=rng.choice(WORDS)))][: rng.randint(1, 2)])
        return models.NestedCondition(nested=models.Nested(key="arr", filter=inner))
    return random_filter(rng, spec, ids, depth + 1)


def random_filter(rng: random.Random, spec: Spec, ids: Ids, depth: int = 0) -> models.Filter:
    if rng.random() < 0.5:
        # one condition: selective enough to leave points on both sides of it
        clause = rng.choice(["must", "must", "should", "must_not"])
        return models.Filter(**{clause: [condition(rng, spec, ids, depth + 1)]})
    parts = {}
    for clause in rng.sample(["must", "should", "must_not", "min_should"], rng.randint(1, 2)):
        conds = [condition(rng, spec, ids, depth) for _ in range(rng.randint(1, 2 if clause == "must" else 3))]
        if clause == "min_should":
            parts[clause] = models.MinShould(conditions=conds, min_count=rng.randint(1, len(conds)))
        else:
            parts[clause] = conds
    return models.Filter(**parts)


def narrow_filter(rng: random.Random, spec: Spec, ids: Ids) -> models.Filter:
    """A filter for updates: mostly one selective condition, so that updates by filter
    do not flatten every payload of the collection into the same one."""
    if rng.random() < 0.8:
        cond = _match(rng) if rng.random() < 0.6 else condition(rng, spec, ids, depth=1)
        return models.Filter(must=[cond])
    return random_filter(rng, spec, ids)


# ---------------------------------------------------------------------------- vectors

def vector(rng: random.Random, size: int) -> list:
    # A zero vector now and then: Cosine leaves it as it is and its scores tie at 0.
    # DEVIATION: no other vector shorter than f32::EPSILON. The server stores those
    # unnormalized too and scores them as they are; local mode re-normalizes stored
    # vectors in place at every Cosine search (distances.cosine_similarity), so its
    # scores, and afterwards its stored vectors, differ from the server's.
    # tests/unit/test_apply.py checks the server's behaviour instead.
    if rng.random() < 0.005:
        return [0.0] * size
    return [rng.uniform(-1, 1) for _ in range(size)]


class OpGen:
    """Random writes and reads for one collection spec.

    ``existing()`` returns the ids the collection holds now (from the oracle).
    """

    def __init__(self, rng: random.Random, spec: Spec, ids: Ids, existing: Callable[[], list]):
        self.rng, self.spec, self.ids, self.existing = rng, spec, ids, existing

    # -- building blocks ------------------------------------------------------

    def _vectors(self, allow_empty: bool = True):
        """Vectors for a new point: the unnamed vector as a list (rarely as {"": ..}),
        or any subset of the named ones."""
        rng, spec = self.rng, self.spec
        if not spec.named:
            vec = vector(rng, spec.vectors[""][0])
            return {"": vec} if rng.random() < 0.1 else vec
        names = [n for n in spec.names if rng.random() < 0.7]
        if not names and not allow_empty:
            names = [rng.choice(spec.names)]
        return {n: vector(rng, spec.vectors[n][0]) for n in names}

    def _bad_vectors(self):
        """A vector the server rejects: wrong dimension, unknown name, or the wrong form."""
        rng, spec = self.rng, self.spec
        name = rng.choice(spec.names)
        size = spec.vectors[name][0]
        kind = rng.randrange(3)
        if kind == 0:
            bad = vector(rng, size + rng.choice([-1, 1]) if size > 1 else size + 1)
            return bad if not spec.named else {name: bad}
        if kind == 1:
            return {"nope": vector(rng, size)}
        # the other form: a plain list for a named collection, names for an unnamed one
        return vector(rng, size) if spec.named else {"dense": vector(rng, size)}

    def _update_vectors(self):
        """A vectors update for update_vectors: one or more names, never empty."""
        rng, spec = self.rng, self.spec
        if not spec.named:
            return vector(rng, spec.vectors[""][0])
        names = [n for n in spec.names if rng.random() < 0.5] or [rng.choice(spec.names)]
        return {n: vector(rng, spec.vectors[n][0]) for n in names}

    def _targets(self, missing_rate: float = 0.1, k: int | None = None) -> tuple[list, bool]:
        """Ids to update, in random spellings; with ``missing_rate`` one of them does not exist."""
        rng = self.rng
        live = self.existing()
        k = k or rng.randint(1, 4)
        chosen = rng.sample(live, min(k, len(live)))
        with_missing = not chosen or rng.random() < missing_rate
        if with_missing:
            absent = [i for i in self.ids.pool if i not in set(live)]
            if absent:
                chosen.insert(rng.randrange(len(chosen) + 1), rng.choice(absent))
        if chosen and rng.random() < 0.1:
            chosen.append(rng.choice(chosen))  # a duplicate id in one request
        return [self.ids.spell(i) for i in chosen], with_missing

    def _selector(self, missing_rate: float = 0.1):
        """Ids (as a list or PointIdsList) or a filter (as a Filter or FilterSelector)."""
        rng = self.rng
        if rng.random() < 0.25:
            flt = narrow_filter(rng, self.spec, self.ids)
            return (flt if rng.random() < 0.5 else models.FilterSelector(filter=flt)), "filter"
        ids, missing = self._targets(missing_rate)
        return (ids if rng.random() < 0.6 else models.PointIdsList(points=ids)), ("missing" if missing else "ids")

    def _points(self, n: int) -> list:
        return [models.PointStruct(id=self.ids.spell(self.ids.any()), vector=self._vectors(),
                                   payload=payload(self.rng) if self.rng.random() < 0.85 else None)
                for _ in range(n)]

    def _batch(self, n: int) -> models.Batch:
        rng, spec = self.rng, self.spec
        ids = [self.ids.spell(self.ids.any()) for _ in range(n)]
        if spec.named:
            names = [x for x in spec.names if rng.random() < 0.7] or [spec.names[0]]
            vectors = {x: [vector(rng, spec.vectors[x][0]) for _ in ids] for x in names}
        else:
            vectors = [vector(rng, spec.vectors[""][0]) for _ in ids]
        payloads = [payload(rng) for _ in ids] if rng.random() < 0.8 else None
        return models.Batch(ids=ids, vectors=vectors, payloads=payloads)

    # -- writes -----------------------------------------------------------------

    def write(self) -> Call:
        rng = self.rng
        roll = rng.random()
        c = self.spec.name
        if roll < 0.16:
            return Call("upsert", {"collection_name": c, "points": self._points(rng.randint(1, 6))}, "upsert points")
        if roll < 0.18:
            return self._conditional()
        if roll < 0.25:
            return Call("upsert", {"collection_name": c, "points": self._batch(rng.randint(1, 6))}, "upsert batch")
        if roll < 0.28:
            pts = self._points(rng.randint(1, 3))
            bad = models.PointStruct(id=self.ids.spell(self.ids.any()), vector=self._bad_vectors())
            pts.insert(rng.randrange(len(pts) + 1), bad)
            return Call("upsert", {"collection_name": c, "points": pts}, "upsert bad vector")
        if roll < 0.37:
            ids, missing = self._targets(0.12)
            bad = rng.random() < 0.08
            pts = [models.PointVectors(id=i, vector=self._update_vectors()) for i in ids]
            if bad:
                pts[rng.randrange(len(pts))] = models.PointVectors(id=ids[0], vector=self._bad_vectors())
            label = "update_vectors" + (" bad vector" if bad else "") + (" missing" if missing else "")
            return Call("update_vectors", {"collection_name": c, "points": pts}, label)
        if roll < 0.43:
            selector, how = self._selector(0.12)
            names = rng.sample(self.spec.names, rng.randint(1, len(self.spec.names)))
            if rng.random() < 0.06:
                names.append("nope")
                how += " unknown name"
            return Call("delete_vectors", {"collection_name": c, "vectors": names, "points": selector},
                        f"delete_vectors by {how}")
        if roll < 0.57:
            selector, how = self._selector(0.12)
            kwargs = {"collection_name": c, "payload": set_payload_body(rng), "points": selector}
            key = rng.choice(SET_KEYS)
            if key is not None:
                kwargs["key"] = key
            return Call("set_payload", kwargs, f"set_payload by {how}" + (" with key" if key else ""))
        if roll < 0.63:
            selector, how = self._selector(0.12)
            return Call("overwrite_payload", {"collection_name": c, "payload": payload(rng), "points": selector},
                        f"overwrite_payload by {how}")
        if roll < 0.69:
            selector, how = self._selector(0.12)
            keys = rng.sample(DELETE_KEYS, rng.randint(1, 3))
            return Call("delete_payload", {"collection_name": c, "keys": keys, "points": selector},
                        f"delete_payload by {how}")
        if roll < 0.73:
            selector, how = self._selector(0.12)
            return Call("clear_payload", {"collection_name": c, "points_selector": selector}, f"clear_payload by {how}")
        if roll < 0.80:
            if rng.random() < 0.25:
                flt = random_filter(rng, self.spec, self.ids)
                return Call("delete", {"collection_name": c, "points_selector": models.FilterSelector(filter=flt)},
                            "delete by filter")
            ids, _ = self._targets(0.3)
            return Call("delete", {"collection_name": c, "points_selector": ids}, "delete by ids")
        if roll < 0.82:
            return self._empty()
        return self._batch_update()

    def _conditional(self) -> Call:
        """Conditional writes: upsert with ``update_mode`` and/or ``update_filter``, or
        update_vectors with ``update_filter`` (which only guards existing points)."""
        rng, c = self.rng, self.spec.name
        flt = narrow_filter(rng, self.spec, self.ids) if rng.random() < 0.6 else None
        if rng.random() < 0.3:
            ids, missing = self._targets(0.1)
            pts = [models.PointVectors(id=i, vector=self._update_vectors()) for i in ids]
            return Call("update_vectors", {"collection_name": c, "points": pts, "update_filter": flt},
                        "update_vectors conditional" + (" missing" if missing else ""))
        live = self.existing()
        points = self._points(rng.randint(1, 4))
        for p in points[: rng.randint(0, len(points))]:
            if live:
                p.id = self.ids.spell(rng.choice(live))  # some existing, some new
        kwargs = {"collection_name": c, "points": points, "update_filter": flt}
        mode = rng.choice([None, models.UpdateMode.INSERT_ONLY, models.UpdateMode.UPDATE_ONLY, models.UpdateMode.UPSERT])
        if mode is not None:
            kwargs["update_mode"] = mode
        return Call("upsert", kwargs, f"upsert conditional {mode}")

    def _empty(self) -> Call:
        """A request that selects or carries nothing: rejected, and changes nothing."""
        c, kind = self.spec.name, self.rng.randrange(5)
        if kind == 0:
            return Call("delete", {"collection_name": c, "points_selector": []}, "empty delete")
        if kind == 1:
            return Call("set_payload", {"collection_name": c, "payload": {"a": 1}, "points": []}, "empty set_payload")
        if kind == 2:
            return Call("upsert", {"collection_name": c, "points": []}, "empty upsert")
        if kind == 3:
            return Call("update_vectors", {"collection_name": c, "points": []}, "empty update_vectors")
        ids, _ = self._targets(0.0)
        return Call("delete_vectors", {"collection_name": c, "vectors": [], "points": ids}, "empty delete_vectors")

    def _batch_update(self) -> Call:
        rng = self.rng
        ops, labels = [], []
        for _ in range(rng.randint(2, 5)):
            op, label = self._batch_op()
            ops.append(op)
            labels.append(label)
        return Call("batch_update_points", {"collection_name": self.spec.name, "update_operations": ops},
                    "batch[" + ", ".join(labels) + "]")

    def _batch_op(self):
        rng = self.rng
        roll = rng.random()
        if roll < 0.2:
            return models.UpsertOperation(upsert=models.PointsList(points=self._points(rng.randint(1, 3)))), "upsert"
        if roll < 0.3:
            return models.UpsertOperation(upsert=models.PointsBatch(batch=self._batch(rng.randint(1, 3)))), "upsert batch"
        if roll < 0.33:
            bad = models.PointStruct(id=self.ids.spell(self.ids.any()), vector=self._bad_vectors())
            return models.UpsertOperation(upsert=models.PointsList(points=[bad])), "upsert bad"
        if roll < 0.43:
            ids, missing = self._targets(0.1)
            pts = [models.PointVectors(id=i, vector=self._update_vectors()) for i in ids]
            return (models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=pts)),
                    "update_vectors" + (" missing" if missing else ""))
        sel, how = self._selector(0.1)
        ids = sel.points if isinstance(sel, models.PointIdsList) else sel if isinstance(sel, list) else None
        flt = sel.filter if isinstance(sel, models.FilterSelector) else sel if isinstance(sel, models.Filter) else None
        where = {"points": ids} if ids is not None else {"filter": flt}
        if roll < 0.5:
            names = rng.sample(self.spec.names, 1)
            return (models.DeleteVectorsOperation(delete_vectors=models.DeleteVectors(vector=names, **where)),
                    f"delete_vectors {how}")
        if roll < 0.65:
            body = models.SetPayload(payload=set_payload_body(rng), key=rng.choice(SET_KEYS), **where)
            return models.SetPayloadOperation(set_payload=body), f"set_payload {how}"
        if roll < 0.72:
            body = models.SetPayload(payload=payload(rng), **where)
            return models.OverwritePayloadOperation(overwrite_payload=body), f"overwrite_payload {how}"
        if roll < 0.8:
            body = models.DeletePayload(keys=rng.sample(DELETE_KEYS, 2), **where)
            return models.DeletePayloadOperation(delete_payload=body), f"delete_payload {how}"
        if roll < 0.86:
            selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt)
            return models.ClearPayloadOperation(clear_payload=selector), f"clear_payload {how}"
        selector = models.PointIdsList(points=ids) if ids is not None else models.FilterSelector(filter=flt)
        return models.DeleteOperation(delete=selector), f"delete {how}"

    # -- reads --------------------------------------------------------------------

    def with_payload(self):
        r = self.rng.random()
        if r < 0.6:
            return True
        if r < 0.75:
            return False
        keys = self.rng.sample(["color", "nested.x", "arr[].x", "tags", "obj.inner", "missing", "n"],
                               self.rng.randint(1, 3))
        if r < 0.9:
            return keys
        return models.PayloadSelectorExclude(exclude=keys)

    def with_vectors(self):
        r = self.rng.random()
        if r < 0.4:
            return False
        if r < 0.8:
            return True
        # Only names the collection has: whether the server rejects an unknown name
        # here is unverified, and local mode ignores it.
        return self.rng.sample(self.spec.names, self.rng.randint(1, len(self.spec.names)))

    def read_filter(self):
        return random_filter(self.rng, self.spec, self.ids) if self.rng.random() < 0.5 else None

    def retrieve(self) -> Call:
        rng = self.rng
        live = self.existing()
        pick = rng.sample(live, min(len(live), rng.randint(1, 6))) + [self.ids.any() for _ in range(rng.randint(0, 2))]
        if pick and rng.random() < 0.2:
            pick.append(rng.choice(pick))
        return Call("retrieve", {"collection_name": self.spec.name, "ids": [self.ids.spell(i) for i in pick],
                                 "with_payload": self.with_payload(), "with_vectors": self.with_vectors()},
                    "retrieve")

    def scroll_start(self) -> dict:
        rng = self.rng
        kwargs = {"collection_name": self.spec.name, "limit": rng.choice([1, 2, 3, 5, 7, 10, 16, 25, 40, 100]),
                  "scroll_filter": self.read_filter(), "with_payload": self.with_payload(),
                  "with_vectors": self.with_vectors()}
        if rng.random() < 0.25:
            kwargs["offset"] = self.ids.spell(self.ids.any())
        return kwargs

    def count(self) -> Call:
        return Call("count", {"collection_name": self.spec.name, "count_filter": self.read_filter(), "exact": True},
                    "count")

    def query(self) -> Call:
        rng, spec = self.rng, self.spec
        name = rng.choice(spec.names)
        query = vector(rng, spec.vectors[name][0])
        live = self.existing()
        if live and rng.random() < 0.15:
            query = self.ids.spell(rng.choice(live))  # by point id: its own vector, itself excluded
        kwargs = {"collection_name": spec.name, "query": query,
                  "query_filter": self.read_filter(), "limit": rng.randint(1, 20),
                  "with_payload": self.with_payload(), "with_vectors": self.with_vectors(),
                  "search_params": models.SearchParams(exact=True)}
        if spec.named:
            kwargs["using"] = name
        if rng.random() < 0.2:
            kwargs["offset"] = rng.randint(1, 4)
        if rng.random() < 0.2:
            # random floats: a score never equals the threshold, where local mode and
            # the server might disagree on inclusiveness
            distance = spec.vectors[name][1]
            low, high = {D.COSINE: (-1, 1), D.DOT: (-2, 2), D.EUCLID: (0, 3), D.MANHATTAN: (0, 5)}[distance]
            kwargs["score_threshold"] = rng.uniform(low, high)
        return Call("query_points", kwargs, "query")
