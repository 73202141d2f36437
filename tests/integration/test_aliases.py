"""Collection aliases through qdrant-client, against local mode: create, switch, rename,
delete, reads and writes through an alias, and the errors, on a real broker."""
import threading
import time
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets


def create_alias(alias: str, collection: str):
    return models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))


def delete_alias(alias: str):
    return models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))


def rename_alias(old: str, new: str):
    return models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name=old, new_alias_name=new))


@pytest.fixture(scope="module")
def both(module_server):
    return QdrantClient(url=module_server.url, timeout=30), QdrantClient(":memory:")


def names(prefix: str) -> list:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}{i}_{tag}" for i in range(3)]


def setup(clients, c1: str, c2: str) -> None:
    for client in clients:
        for name, base in ((c1, 0), (c2, 100)):
            client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
            client.upsert(name, points=[models.PointStruct(id=base + i, vector=[1.0, float(i)], payload={"src": name})
                                        for i in range(5)])


def same(clients, call) -> object:
    got, want = (call(c) for c in clients)
    assert got == want
    return got


def all_aliases(client) -> list:
    return sorted((a.alias_name, a.collection_name) for a in client.get_aliases().aliases)


def test_aliases_answer_like_local_mode(both, module_server):
    c1, c2, alias = names("al")
    setup(both, c1, c2)
    for client in both:
        client.update_collection_aliases([create_alias(alias, c1)])
    same(both, all_aliases)
    scroll = lambda c: [(p.id, p.payload) for p in c.scroll(alias, limit=10)[0]]  # noqa: E731
    assert same(both, scroll)[0] == (0, {"src": c1})
    same(both, lambda c: c.count(alias).count)
    same(both, lambda c: [p.id for p in c.query_points(alias, query=[1.0, 1.0], limit=3).points])
    same(both, lambda c: [p.id for p in c.retrieve(alias, [1, 101])])

    # The switch: one request, one record.
    before = end_offsets(module_server.bootstrap, module_server.topic)
    for client in both:
        client.update_collection_aliases([delete_alias(alias), create_alias(alias, c2)])
    after = end_offsets(module_server.bootstrap, module_server.topic)
    assert sum(after.values()) - sum(before.values()) == 1
    assert same(both, scroll)[0] == (100, {"src": c2})

    # Writes through the alias land in the collection it names now.
    for client in both:
        client.upsert(alias, points=[models.PointStruct(id=7, vector=[0.5, 0.5], payload={"via": "alias"})])
    same(both, lambda c: c.retrieve(c2, [7])[0].payload)

    for client in both:
        client.update_collection_aliases([rename_alias(alias, alias + "_new")])
    same(both, all_aliases)
    same(both, lambda c: sorted(a.alias_name for a in c.get_collection_aliases(c2).aliases))

    # Dropping a collection drops its aliases; a recreated one does not inherit them.
    for client in both:
        client.delete_collection(c2)
        client.create_collection(c2, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    assert alias + "_new" not in [a for a, _ in same(both, all_aliases)]


def test_bad_alias_actions_change_nothing_and_publish_nothing(both, module_server):
    remote, _ = both
    c1, c2, alias = names("bad")
    setup([remote], c1, c2)
    remote.update_collection_aliases([create_alias(alias, c1)])
    table = all_aliases(remote)
    cases = [
        ([create_alias("x" + alias, c1), create_alias("y" + alias, "no_such_collection")], 404,
         "Collection `no_such_collection` doesn't exist!"),
        ([create_alias(c2, c1)], 409, f"Collection `{c2}` already exists!"),
        ([rename_alias("never_was", "x")], 404, "Alias never_was does not exists!"),
    ]
    for actions, status, message in cases:
        before = end_offsets(module_server.bootstrap, module_server.topic)
        with pytest.raises(UnexpectedResponse) as info:
            remote.update_collection_aliases(actions)
        assert info.value.status_code == status and message in info.value.content.decode()
        assert end_offsets(module_server.bootstrap, module_server.topic) == before
        assert all_aliases(remote) == table  # all or nothing
    r = httpx.put(f"{module_server.url}/collections/{alias}", json={"vectors": {"size": 2, "distance": "Dot"}})
    assert r.status_code == 400 and "Alias with the same name already exists" in r.text
    assert not remote.delete_collection(alias)  # an alias is not a collection: nothing to drop
    assert remote.collection_exists(alias)  # but it names one, as in local mode


def test_a_reader_never_sees_the_alias_missing_during_switches(both, module_server):
    remote, _ = both
    c1, c2, alias = names("sw")
    setup([remote], c1, c2)
    remote.update_collection_aliases([create_alias(alias, c1)])
    stop, seen, errors = threading.Event(), set(), []

    def read():
        with httpx.Client(base_url=module_server.url, timeout=10) as http:
            while not stop.is_set():
                r = http.post(f"/collections/{alias}/points/scroll", json={"limit": 1})
                if r.status_code != 200:
                    errors.append(r.text)
                else:
                    seen.add(r.json()["result"]["points"][0]["payload"]["src"])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20):
            target = c2 if i % 2 == 0 else c1
            remote.update_collection_aliases([delete_alias(alias), create_alias(alias, target)])
            time.sleep(0.01)
    finally:
        stop.set()
        reader.join()
    assert errors == [] and seen == {c1, c2}

