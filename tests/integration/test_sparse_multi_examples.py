"""Example-scored queries (recommend, discover, context) and mmr over
sparse vectors (with and without IDF) and multivectors, against qdrant-client's local mode."""
import math
import os
import random
import uuid

import pytest
from qdrant_client import QdrantClient, models

SEED = int(os.environ.get("POINTLOG_TEST_SEED", "0"))


def _sparse(rng):
    indices = sorted(rng.sample(range(30), rng.randint(2, 6)))
    return models.SparseVector(indices=indices, values=[rng.uniform(0.1, 2) for _ in indices])


def _multi(rng, rows=None):
    return [[rng.gauss(0, 1) for _ in range(3)] for _ in range(rows or rng.randint(1, 3))]


@pytest.fixture(scope="module")
def setup(module_server):
    remote = QdrantClient(url=module_server.url, timeout=30)
    grpc_client = QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True,
                               timeout=30)
    local = QdrantClient(":memory:")
    name = f"sm{uuid.uuid4().hex[:8]}"
    rng = random.Random(31 + SEED)
    points = [models.PointStruct(id=i, payload={"g": i % 4}, vector={
        "s": _sparse(rng), "i": _sparse(rng), "mc": _multi(rng), "me": _multi(rng)}) for i in range(90)]
    multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
    for client in (remote, local):
        client.create_collection(
            name, vectors_config={"mc": models.VectorParams(size=3, distance=models.Distance.COSINE,
                                                            multivector_config=multi),
                                  "me": models.VectorParams(size=3, distance=models.Distance.EUCLID,
                                                            multivector_config=multi)},
            sparse_vectors_config={"s": models.SparseVectorParams(),
                                   "i": models.SparseVectorParams(modifier=models.Modifier.IDF)})
        client.upsert(name, points=points)
    return name, remote, grpc_client, local, rng


def _queries(rng, using):
    make = (lambda: _sparse(rng)) if using in ("s", "i") else (lambda: _multi(rng))
    ids = rng.sample(range(90), 5)
    out = [models.RecommendQuery(recommend=models.RecommendInput(positive=[ids[0], make()], negative=[ids[1]],
                                                                 strategy=strategy))
           for strategy in models.RecommendStrategy]
    pairs = [models.ContextPair(positive=ids[2], negative=make()), models.ContextPair(positive=make(), negative=ids[3])]
    out.append(models.DiscoverQuery(discover=models.DiscoverInput(target=ids[4], context=pairs)))
    # Relevance feedback: local mode scores it over dense vectors only (its feedback items
    # must be dense), so it has no reference here.
    out.append(models.NearestQuery(nearest=make(), mmr=models.Mmr(diversity=0.6, candidates_limit=30)))
    return out, models.ContextQuery(context=pairs)


@pytest.mark.parametrize("using", ["s", "i", "mc", "me"])
def test_example_queries_over_sparse_and_multivectors_answer_like_local_mode(setup, using):
    name, remote, grpc_client, local, rng = setup
    flt = models.Filter(must_not=[models.FieldCondition(key="g", match=models.MatchValue(value=0))])
    for _ in range(2):
        queries, context = _queries(rng, using)
        # Sparse similarities are 0 for every point sharing no index with an example, so
        # scores tie (local mode orders ties arbitrarily): whole rankings are compared.
        for query in queries + [context]:
            for kwargs in ({"limit": 100}, {"limit": 100, "query_filter": flt}):
                want = local.query_points(name, query=query, using=using, **kwargs).points
                for client in (remote, grpc_client):
                    same_ranking(client.query_points(name, query=query, using=using, **kwargs).points, want)


def same_ranking(got: list, want: list) -> None:
    assert len(got) == len(want) > 0
    assert all(math.isclose(g.score, w.score, rel_tol=1e-4, abs_tol=1e-4) for g, w in zip(got, want))
    assert {p.id: round(p.score, 3) for p in got} == {p.id: round(p.score, 3) for p in want}
