"""``apply(state, command, offset)``: the one place where operations change state.

It is deterministic: it reads only the state and the command, and the offset
becomes the version of every point it touches. Errors are the ones Qdrant reports
while applying (e.g. 404 for a payload update of a missing point); changes made
before the error stay, as in Qdrant, whose updates are not transactional either.
"""
from storage import aliases, shards
from storage import operations as ops
from storage.collection import Collection, Point
from storage.errors import BadRequest, Conflict, NotFound
from storage.ids import decode_id, encode_id
from storage.paths import clone_json, delete_at_path, set_at_path
from storage.reads import matching_keys
from storage.state import State


# kind -> fn(state, collection name, op, offset): the one dispatch of apply.
_APPLY: dict = {}


def applies(op_class, on_collection: bool = True):
    """Register how an operation kind is applied. ``on_collection`` functions get the
    existing collection (404 otherwise) after the op's config checks, which run again
    here because producers may write to the log directly."""
    def register(fn):
        if on_collection:
            def run(state: State, name: str, op, offset: int) -> None:
                col = state.collections.get(state.resolve(name))
                if col is None:
                    raise collection_not_found(name)
                op.validate_against(col.config)
                fn(state, col, op, offset)
        else:
            run = fn
        _APPLY[op_class] = run
        return fn
    return register


def apply(state: State, command: ops.Command, offset: int) -> None:
    _APPLY[type(command.op)](state, command.collection, command.op, offset)


def collection_not_found(name: str) -> NotFound:
    return NotFound(f"Not found: Collection `{name}` doesn't exist!")


def point_not_found(pid) -> NotFound:
    return NotFound(f"Not found: No point with id {pid} found")


@applies(ops.CreateCollection, on_collection=False)
def _create_collection(state: State, name: str, op: ops.CreateCollection, offset: int) -> None:
    if name in state.collections:
        raise Conflict(f"Wrong input: Collection `{name}` already exists!")
    aliases.check_new_collection_name(state.aliases, name)
    state.put_collection(Collection(state.allocate_cid(), name, op.config, offset))


@applies(ops.DeleteCollection, on_collection=False)
def _delete_collection(state: State, name: str, op: ops.DeleteCollection, offset: int) -> None:
    col = state.collections.get(name)
    if col is not None:
        if shards.is_sharded(col):
            # Its shards held here go with it; their topic stays, as the log always does.
            which = shards.incarnation(col)
            for shard in range(shards.shard_count(col.config)):
                held = state.collections.get(shards.shard_name(which, shard))
                if held is not None:
                    state.drop_collection(held)
            state.drop_controls(which)
        state.drop_collection(col)
        if name in state.aliases.values():
            state.put_aliases(aliases.without_collection(state.aliases, name))


@applies(ops.ShardBarrier, on_collection=False)
def _shard_barrier(state: State, name: str, op: ops.ShardBarrier, offset: int) -> None:
    # streams/shard_worker.py applies barriers where they belong: in shard topics.
    raise BadRequest("Bad request: a shard_barrier record belongs in a shard topic, not in the WAL")


@applies(ops.UpdateAliases, on_collection=False)
def _update_aliases(state: State, name: str, op: ops.UpdateAliases, offset: int) -> None:
    state.put_aliases(aliases.after_actions(state.collections, state.aliases, op.actions))


@applies(ops.UpdateCollection)
def _update_collection(state: State, col: Collection, op: ops.UpdateCollection, offset: int) -> None:
    col.config = col.config.updated(op.diff())
    state.put_collection(col)


@applies(ops.CreateFieldIndex)
def _create_field_index(state: State, col: Collection, op: ops.CreateFieldIndex, offset: int) -> None:
    col.set_payload_schema({**col.payload_schema, op.field_name: op.field_schema})
    state.put_collection(col)


@applies(ops.DeleteFieldIndex)
def _delete_field_index(state: State, col: Collection, op: ops.DeleteFieldIndex, offset: int) -> None:
    col.set_payload_schema({k: v for k, v in col.payload_schema.items() if k != op.field_name})
    state.put_collection(col)


def _selected_keys(col: Collection, selector: ops.PointsSelector) -> list:
    """Keys in request order (ids) or scroll order (filter); missing ids are kept."""
    if selector.ids is not None:
        if not selector.ids:
            raise BadRequest("Wrong input: Empty update request")
        return [encode_id(pid) for pid in dict.fromkeys(selector.ids)]
    return matching_keys(col, col.compile_filter(selector.filter))


def _for_each_existing(col: Collection, keys: list, update) -> None:
    """Run ``update(point)`` on each existing point; then 404 for the first missing one,
    because Qdrant updates all the points it has before reporting the missing id."""
    missing = None
    for key in keys:
        point = col.points.get(key)
        if point is None:
            if missing is None:
                missing = key
            continue
        update(point)
    if missing is not None:
        raise point_not_found(decode_id(missing))


@applies(ops.Upsert)
def _upsert(state: State, col: Collection, op: ops.Upsert, offset: int) -> None:
    if not op.points:
        raise BadRequest("Wrong input: Empty update request")
    only_if = col.compile_filter(op.update_filter)
    stores = list(col.named_stores())  # an upsert adds no vector names
    for p in op.points:
        key = encode_id(p.id)
        if not _upsert_allowed(col, key, op.update_mode, only_if):
            continue
        point = Point(p.id, key, clone_json(p.payload) if p.payload else {}, offset)
        col.add(point)
        for name, store in stores:
            vec = p.vectors.get(name)
            if vec is None:
                store.remove(key)
            else:
                store.put(key, store.prepare(vec))
        state.put_point(col, point)


def _upsert_allowed(col: Collection, key: bytes, mode: str, only_if) -> bool:
    """Conditional upserts: `update_mode` and `update_filter` (which only guards
    existing points; new points are inserted regardless)."""
    existing = col.points.get(key)
    if existing is None:
        return mode != "update_only"
    if mode == "insert_only":
        return False
    return only_if is None or only_if.matches(existing.id, existing.payload, col.vector_names(key))


@applies(ops.UpdateVectors)
def _update_vectors(state: State, col: Collection, op: ops.UpdateVectors, offset: int) -> None:
    by_key = {}
    for p in op.points:
        by_key.setdefault(encode_id(p.id), {}).update(p.vectors)
    only_if = col.compile_filter(op.update_filter)

    def update(point: Point) -> None:
        if only_if is not None and not only_if.matches(point.id, point.payload, col.vector_names(point.key)):
            return
        for name, vec in by_key[point.key].items():
            store = col.store(name)
            store.put(point.key, store.prepare(vec))
        _touch(state, col, point, offset)

    _for_each_existing(col, list(by_key), update)


@applies(ops.DeleteVectors)
def _delete_vectors(state: State, col: Collection, op: ops.DeleteVectors, offset: int) -> None:
    def update(point: Point) -> None:
        for name in op.names:
            col.store(name).remove(point.key)
        _touch(state, col, point, offset)

    _for_each_existing(col, _selected_keys(col, op.selector), update)


@applies(ops.SetPayload)
def _set_payload(state: State, col: Collection, op: ops.SetPayload, offset: int) -> None:
    def update(point: Point) -> None:
        payload = clone_json(point.payload)
        set_at_path(payload, op.key, op.payload)
        col.set_payload(point, payload)
        _touch(state, col, point, offset)

    _for_each_existing(col, _selected_keys(col, op.selector), update)


@applies(ops.OverwritePayload)
def _overwrite_payload(state: State, col: Collection, op: ops.OverwritePayload, offset: int) -> None:
    def update(point: Point) -> None:
        col.set_payload(point, clone_json(op.payload))
        _touch(state, col, point, offset)

    _for_each_existing(col, _selected_keys(col, op.selector), update)


@applies(ops.DeletePayload)
def _delete_payload(state: State, col: Collection, op: ops.DeletePayload, offset: int) -> None:
    def update(point: Point) -> None:
        payload = clone_json(point.payload)
        for key in op.keys:
            delete_at_path(payload, key)
        col.set_payload(point, payload)
        _touch(state, col, point, offset)

    _for_each_existing(col, _selected_keys(col, op.selector), update)


@applies(ops.ClearPayload)
def _clear_payload(state: State, col: Collection, op: ops.ClearPayload, offset: int) -> None:
    def update(point: Point) -> None:
        col.set_payload(point, {})
        _touch(state, col, point, offset)

    _for_each_existing(col, _selected_keys(col, op.selector), update)


@applies(ops.DeletePoints)
def _delete_points(state: State, col: Collection, op: ops.DeletePoints, offset: int) -> None:
    for key in _selected_keys(col, op.selector):
        if key in col.points:
            col.remove(key)
            state.delete_point(col, key)


@applies(ops.Batch)
def _batch(state: State, col: Collection, op: ops.Batch, offset: int) -> None:
    # Stops at the first error; what ran before it stays applied, as in Qdrant.
    for inner in op.operations:
        _APPLY[type(inner)](state, col.name, inner, offset)


def _touch(state: State, col: Collection, point: Point, offset: int) -> None:
    col.touch(point, offset)
    state.put_point(col, point)
