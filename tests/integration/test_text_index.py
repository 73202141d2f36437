"""Full-text indexes: once a `text` index is declared on a key, `match.text`, `text_any`
and `phrase` on it tokenize as Qdrant's full-text index does (its tokenizers and
matching rules, lib/segment/src/index/field_index/full_text_index). Local mode ignores
index params, so each expectation is the one Qdrant's source and documentation define.
One module server, one collection per case, through qdrant_client (REST and gRPC)."""
import uuid

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.support import end_offsets


@pytest.fixture(scope="module")
def clients(module_server):
    return (QdrantClient(url=module_server.url, timeout=30),
            QdrantClient(url=module_server.url, grpc_port=module_server.grpc_port, prefer_grpc=True, timeout=30))


def _collection(client, texts, schema) -> str:
    name = f"t{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, 0.0], payload={"t": text})
                                for i, text in enumerate(texts)])
    if schema is not None:
        client.create_payload_index(name, "t", field_schema=schema, wait=True)
    return name


def _ids(client, name, **match) -> list:
    key, value = next(iter(match.items()))
    cond = {"text": models.MatchText(text=value), "text_any": models.MatchTextAny(text_any=value),
            "phrase": models.MatchPhrase(phrase=value)}[key]
    points, _ = client.scroll(name, scroll_filter=models.Filter(must=[models.FieldCondition(key="t", match=cond)]),
                              limit=100)
    return sorted(p.id for p in points)


def _params(**kw):
    return models.TextIndexParams(type=models.TextIndexType.TEXT, **kw)


DOGS = ["running dogs", "the runner", "a run", "ran away", "Run, Forest, RUN"]


def test_prefix_tokenizer_matches_word_prefixes(clients):
    # The example: with a prefix index, "run" matches every word starting with it.
    for client in clients:
        name = _collection(client, DOGS, _params(tokenizer=models.TokenizerType.PREFIX))
        assert _ids(client, name, text="run") == [0, 1, 2, 4]
        assert _ids(client, name, text="runn dog") == [0]
        assert _ids(client, name, text_any="dog ran") == [0, 3]


def test_without_an_index_words_match_whole(clients):
    client = clients[0]
    name = _collection(client, DOGS, None)
    assert _ids(client, name, text="run") == [2, 4]
    assert _ids(client, name, phrase="a run") == [2]  # phrases need no index without one


def test_word_tokenizer_is_the_default(clients):
    client = clients[0]
    name = _collection(client, DOGS, models.PayloadSchemaType.TEXT)
    assert _ids(client, name, text="RUN") == [2, 4]
    assert _ids(client, name, text_any="dogs away") == [0, 3]


def test_whitespace_tokenizer_keeps_punctuation(clients):
    client = clients[1]
    name = _collection(client, ["Run, Forest", "run forest", "e-mail me"],
                       _params(tokenizer=models.TokenizerType.WHITESPACE))
    assert _ids(client, name, text="run") == [1]
    assert _ids(client, name, text="run,") == [0]
    assert _ids(client, name, text="e-mail") == [2]
    assert _ids(client, name, text="mail") == []


def test_lowercase_false_is_case_sensitive(clients):
    client = clients[0]
    name = _collection(client, ["Qdrant rocks", "qdrant rocks"], _params(lowercase=False))
    assert _ids(client, name, text="Qdrant") == [0]
    assert _ids(client, name, text="qdrant") == [1]


def test_min_and_max_token_len(clients):
    client = clients[0]
    name = _collection(client, ["a cat is here", "an elephant"], _params(min_token_len=3, max_token_len=5))
    assert _ids(client, name, text="cat") == [0]
    assert _ids(client, name, text="elephant") == []  # longer than 5: never a token, and neither is the query
    assert _ids(client, name, text="an") == []  # shorter than 3: the query has no token, matching nothing
    assert _ids(client, name, text="cat an") == [0]  # the short word is dropped from the query


def test_prefix_with_min_and_max_token_len(clients):
    client = clients[0]
    name = _collection(client, ["elephant", "elk"], _params(tokenizer=models.TokenizerType.PREFIX,
                                                            min_token_len=2, max_token_len=4))
    assert _ids(client, name, text="el") == [0, 1]
    assert _ids(client, name, text="elephant") == [0]  # the query is cut to its 4-letter prefix
    assert _ids(client, name, text="e") == []


def test_stopwords_by_language(clients):
    client = clients[1]
    name = _collection(client, ["the cat", "a dog", "the"], _params(stopwords=models.Language.ENGLISH))
    assert _ids(client, name, text="the cat") == [0]  # "the" is dropped from the query
    assert _ids(client, name, text="the") == []  # nothing left to match
    assert _ids(client, name, text_any="a dog") == [1]


def test_stopwords_custom_and_languages(clients):
    client = clients[0]
    name = _collection(client, ["der Hund und die Katze", "qdrant vector"],
                       _params(stopwords=models.StopwordsSet(languages=[models.Language.GERMAN], custom=["Vector"])))
    assert _ids(client, name, text="und") == []
    assert _ids(client, name, text="vector") == []
    assert _ids(client, name, text="hund katze") == [0]


def test_snowball_stemmer(clients):
    client = clients[0]
    stemmer = models.SnowballParams(type=models.Snowball.SNOWBALL, language=models.SnowballLanguage.ENGLISH)
    name = _collection(client, ["running dogs", "he runs", "a runner"], _params(stemmer=stemmer))
    assert _ids(client, name, text="run") == [0, 1]  # running, runs -> run; runner stays runner
    assert _ids(client, name, text="dog") == [0]


def test_phrase_matching(clients):
    client = clients[0]
    texts = ["quick brown fox", "brown quick fox", "the quick  brown"]
    name = _collection(client, texts, _params(phrase_matching=True))
    assert _ids(client, name, phrase="quick brown") == [0, 2]
    assert _ids(client, name, phrase="brown fox") == [0]
    # Without phrase_matching the server's index keeps no positions: a phrase matches nothing.
    plain = _collection(client, texts, _params())
    assert _ids(client, plain, phrase="quick brown") == []
    assert _ids(client, plain, text="quick brown") == [0, 1, 2]


def test_index_in_payload_schema_and_dropped(clients, module_server):
    client = clients[0]
    params = _params(tokenizer=models.TokenizerType.PREFIX, min_token_len=2, lowercase=True)
    name = _collection(client, DOGS, params)
    info = httpx.get(f"{module_server.url}/collections/{name}").json()["result"]["payload_schema"]["t"]
    assert info["data_type"] == "text" and info["points"] == 5
    assert info["params"] == {"type": "text", "tokenizer": "prefix", "min_token_len": 2, "lowercase": True}
    assert client.get_collection(name).payload_schema["t"].params.tokenizer == models.TokenizerType.PREFIX
    client.delete_payload_index(name, "t", wait=True)
    assert _ids(client, name, text="run") == [2, 4]  # back to whole words


def test_nested_key_uses_the_index_of_its_full_path(clients):
    client = clients[0]
    name = f"t{uuid.uuid4().hex[:8]}"
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(name, points=[models.PointStruct(id=1, vector=[1, 0], payload={"d": [{"t": "running"}]})])
    client.create_payload_index(name, "d[].t", field_schema=_params(tokenizer=models.TokenizerType.PREFIX), wait=True)
    flt = models.Filter(must=[models.NestedCondition(nested=models.Nested(key="d", filter=models.Filter(
        must=[models.FieldCondition(key="t", match=models.MatchText(text="run"))])))])
    assert [p.id for p in client.scroll(name, scroll_filter=flt)[0]] == [1]


@pytest.mark.parametrize("params, message", [
    ({"type": "text", "tokenizer": "multilingual"}, "tokenizer: multilingual"),
    ({"type": "text", "tokenizer": "klingon"}, "unknown variant `klingon`"),
    ({"type": "text", "ascii_folding": True}, "ascii_folding"),
    ({"type": "text", "stopwords": "japanese"}, "japanese"),
    ({"type": "text", "stopwords": "elvish"}, "unknown variant `elvish`"),
    ({"type": "text", "stemmer": {"type": "snowball", "language": "latin"}}, "unknown variant `latin`"),
    ({"type": "text", "min_token_len": -1}, "min_token_len"),
    ({"type": "text", "tokeniser": "word"}, "tokeniser"),
])
def test_unsupported_or_bad_params_are_refused(module_server, broker, params, message):
    name = f"t{uuid.uuid4().hex[:8]}"
    QdrantClient(url=module_server.url).create_collection(name, vectors_config=models.VectorParams(
        size=2, distance=models.Distance.DOT))
    before = end_offsets(broker.bootstrap, module_server.topic)
    r = httpx.put(f"{module_server.url}/collections/{name}/index", json={"field_name": "t", "field_schema": params})
    assert r.status_code == 400 and message in r.json()["status"]["error"], r.text
    assert end_offsets(broker.bootstrap, module_server.topic) == before
    with pytest.raises(UnexpectedResponse):
        QdrantClient(url=module_server.url).create_payload_index(name, "t", field_schema=models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.MULTILINGUAL))
