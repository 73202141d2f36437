"""Collection aliases: the table after a list of actions, with Qdrant's errors.

One function serves both the front door (to refuse a bad action list before it is
published) and ``apply`` (the log may hold lists no front door checked): the new
table is computed from a copy, so a failing action changes nothing.
"""
from storage.errors import BadRequest, Conflict, NotFound


def after_actions(collections, aliases: dict, actions: list) -> dict:
    table = dict(aliases)
    for action in actions:
        (kind, body), = action.items()
        if kind == "create_alias":
            name, alias = body["collection_name"], body["alias_name"]
            if name not in collections:
                raise NotFound(f"Not found: Collection `{name}` doesn't exist!")
            if alias in collections:
                raise Conflict(f"Wrong input: Collection `{alias}` already exists!")
            table[alias] = name
        elif kind == "delete_alias":
            table.pop(body["alias_name"], None)
        else:
            old, new = body["old_alias_name"], body["new_alias_name"]
            if old not in table:
                raise NotFound(f"Not found: Alias {old} does not exists!")
            if new in collections:
                raise Conflict(f"Wrong input: Collection `{new}` already exists!")
            table[new] = table.pop(old)
    return table


def check_new_collection_name(aliases: dict, name: str) -> None:
    if name in aliases:
        raise BadRequest(f"Wrong input: Can't create collection with name {name}. "
                         "Alias with the same name already exists")


def without_collection(aliases: dict, name: str) -> dict:
    """A dropped collection takes its aliases with it."""
    return {alias: target for alias, target in aliases.items() if target != name}


def describe(aliases: dict, collection: str | None = None) -> list:
    """Qdrant's AliasDescription list, sorted so that answers are deterministic."""
    return [{"alias_name": alias, "collection_name": target} for alias, target in sorted(aliases.items())
            if collection is None or target == collection]
