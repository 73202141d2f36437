"""Qdrant REST request bodies -> operations, with the Qdrant server's errors.

Checks come in the server's order and wording (the 86 cases of
tests/integration/test_bad_input.py pin them): a body of the wrong shape is a 400
``Format error in JSON body``, a value its validator refuses a 422. What is checked
once an operation exists (its invariants, its fit with the collection's config) is
the operation's own (storage/operations.py), shared with the WAL codec and gRPC.
"""
from api.rest import fields
from storage import operations as ops
from storage import values
from storage.config import CollectionConfig
from storage.errors import BadRequest
from storage.ids import parse_id


def reject_shard_key(body: dict) -> None:
    """pointlog collections have one shard; ``shard_key: null`` means the same as no key."""
    if body.get("shard_key") is not None:
        raise BadRequest("Bad request: shard keys are not supported by pointlog: every collection has "
                         "a single shard, so leave `shard_key` out (or null)")


def _selector(body: dict, op: str) -> ops.PointsSelector:
    reject_shard_key(body)
    if body.get("points") is not None:
        return ops.PointsSelector(ids=[parse_id(i) for i in values.require_list(body["points"], "points")])
    if body.get("filter") is not None:
        return ops.PointsSelector(filter=values.parse_filter(body["filter"], "filter"))
    raise BadRequest(f"Format error in JSON body: {op} needs either `points` (a list of ids) or `filter`")


def _object(body) -> dict:
    return values.require_dict(body, "request body")


def _update_filter(body: dict) -> dict | None:
    raw = body.get("update_filter")
    return None if raw is None else values.parse_filter(raw, "update_filter")


def create_collection(body) -> ops.CreateCollection:
    return ops.CreateCollection(CollectionConfig.from_body(body if body is not None else {}))


def update_collection(body) -> ops.UpdateCollection:
    body = _object(body if body is not None else {})
    if body.get("sparse_vectors") is not None:
        raise BadRequest("Bad request: `sparse_vectors` is not supported by pointlog")
    diff = {}
    for name in ("vectors", "params", "hnsw_config", "optimizers_config", "metadata", "strict_mode_config"):
        if body.get(name) is not None:
            diff[name] = values.require_dict(body[name], name)
    if body.get("quantization_config") is not None:
        diff["quantization_config"] = body["quantization_config"]
    for name, hints in (diff.get("vectors") or {}).items():
        fields.only(hints, "vector_diff", f"vectors.{name}.")
    return ops.UpdateCollection(**diff)


def delete_collection(body) -> ops.DeleteCollection:
    return ops.DeleteCollection()


def update_aliases(body) -> ops.UpdateAliases:
    body = _object(body)
    if body.get("actions") is None:
        raise BadRequest("Format error in JSON body: missing field `actions`")
    actions = values.require_list(body["actions"], "actions")
    for i, action in enumerate(actions):
        values.require_dict(action, f"actions[{i}]")
    return ops.UpdateAliases(actions)


def create_field_index(body) -> ops.CreateFieldIndex:
    body = _object(body)
    return ops.CreateFieldIndex(ops.check_field_name(body.get("field_name")), body.get("field_schema"))


def delete_field_index(body) -> ops.DeleteFieldIndex:
    return ops.DeleteFieldIndex(ops.check_field_name(_object(body).get("field_name")))


def upsert(body) -> ops.Upsert:
    body = _object(body)
    reject_shard_key(body)
    update_filter = _update_filter(body)
    mode = ops.check_update_mode(body.get("update_mode") or "upsert")
    if body.get("batch") is not None:
        points = values.points_from_batch(body["batch"])
    elif body.get("points") is not None:
        points = values.points_from_list(body["points"])
    else:
        raise BadRequest("Format error in JSON body: Invalid PointInsertOperations format: "
                         "expected `points` or `batch`")
    return ops.Upsert(points, update_filter, mode)


def update_vectors(body) -> ops.UpdateVectors:
    body = _object(body)
    reject_shard_key(body)
    if body.get("points") is None:
        raise BadRequest("Format error in JSON body: missing field `points`")
    return ops.UpdateVectors(values.point_vectors_from_list(body["points"]), _update_filter(body))


def delete_vectors(body) -> ops.DeleteVectors:
    body = _object(body)
    names = body.get("vector", body.get("vectors"))
    if names is None:
        raise BadRequest("Format error in JSON body: missing field `vector`")
    names = values.require_list(names, "vector")
    return ops.DeleteVectors(_selector(body, "delete_vectors"), list(dict.fromkeys(names)) if
                             all(isinstance(n, str) for n in names) else names)


def _payload(body: dict) -> dict:
    if body.get("payload") is None:
        raise BadRequest("Format error in JSON body: missing field `payload`")
    return values.require_dict(body["payload"], "payload")


def set_payload(body) -> ops.SetPayload:
    body = _object(body)
    payload = _payload(body)
    key = body.get("key")
    if key is not None and not isinstance(key, str):
        raise BadRequest("Format error in JSON body: key must be a string")
    return ops.SetPayload(_selector(body, "set_payload"), payload, key)


def overwrite_payload(body) -> ops.OverwritePayload:
    body = _object(body)
    return ops.OverwritePayload(_selector(body, "overwrite_payload"), _payload(body))


def delete_payload(body) -> ops.DeletePayload:
    body = _object(body)
    if body.get("keys") is None:
        raise BadRequest("Format error in JSON body: missing field `keys`")
    keys = values.require_list(body["keys"], "keys")
    return ops.DeletePayload(_selector(body, "delete_payload"), keys)


def clear_payload(body) -> ops.ClearPayload:
    return ops.ClearPayload(_selector(_object(body), "clear_payload"))


def delete_points(body) -> ops.DeletePoints:
    return ops.DeletePoints(_selector(_object(body), "delete"))


def batch(body) -> ops.Batch:
    body = _object(body)
    if body.get("operations") is None:
        raise BadRequest("Format error in JSON body: missing field `operations`")
    parsed = []
    for i, item in enumerate(values.require_list(body["operations"], "operations")):
        item = values.require_dict(item, f"operations[{i}]")
        if len(item) != 1:
            raise BadRequest(f"Format error in JSON body: operations[{i}] must have exactly one operation key")
        (name, inner), = item.items()
        if name not in ops.BATCHABLE:
            raise BadRequest(f"Format error in JSON body: operations[{i}]: unknown variant `{name}`, "
                             f"expected one of {', '.join(f'`{k}`' for k in ops.BATCHABLE)}")
        parsed.append(parse(ops.BATCHABLE[name], inner))
    return ops.Batch(parsed)


_PARSERS = {
    ops.CreateCollection: create_collection, ops.DeleteCollection: delete_collection, ops.CreateFieldIndex: create_field_index,
    ops.DeleteFieldIndex: delete_field_index, ops.Upsert: upsert, ops.UpdateVectors: update_vectors,
    ops.DeleteVectors: delete_vectors, ops.SetPayload: set_payload, ops.OverwritePayload: overwrite_payload,
    ops.DeletePayload: delete_payload, ops.ClearPayload: clear_payload, ops.DeletePoints: delete_points,
    ops.Batch: batch, ops.UpdateAliases: update_aliases, ops.UpdateCollection: update_collection,
}


def parse(op_class, body) -> ops.Operation:
    """The operation a REST body asks for, with its invariants checked."""
    op = _PARSERS[op_class](body)
    op.check()
    if op_class is not ops.DeleteCollection:
        fields.only(body, op_class.kind)
    if op_class is ops.Upsert:
        for i, point in enumerate(body.get("points") or ()):
            fields.only(point, "point", f"points[{i}].")
        fields.only(body.get("batch"), "batch_columns", "batch.")
    elif op_class is ops.UpdateVectors:
        for i, point in enumerate(body.get("points") or ()):
            fields.only(point, "point_vectors", f"points[{i}].")
    return op
