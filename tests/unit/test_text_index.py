"""The full-text index tokenizer against the cases of Qdrant's own tokenizer tests
(lib/segment/src/index/field_index/full_text_index/tokenizers), and the params it refuses."""
import pytest

from storage.errors import BadRequest
from storage.filters import compile_filter
from storage.filters.text_index import language_stopwords, text_tokenizer
from storage.paths import parse_path


def tok(**params):
    return text_tokenizer({"type": "text", **params})


def test_word_and_whitespace():
    assert tok(lowercase=False).document("hello, world! Привет, мир!") == ["hello", "world", "Привет", "мир"]
    assert tok().document("hello, world! Привет, мир!") == ["hello", "world", "привет", "мир"]
    assert tok(tokenizer="whitespace").document("hello world") == ["hello", "world"]
    assert tok(tokenizer="whitespace").document("Hello, world!") == ["hello,", "world!"]


def test_prefix_document_and_query():
    t = tok(tokenizer="prefix", max_token_len=4, lowercase=False)
    assert t.document("hello, мир!") == ["h", "he", "hel", "hell", "м", "ми", "мир"]
    assert t.query("hello, мир!") == ["hell", "мир"]
    # Stopwords are not applied to a prefix query: "the" may be the start of "theory".
    t = tok(tokenizer="prefix", stopwords="english")
    assert "the" in t.document("theory") and t.query("the") == ["the"]
    assert t.document("the cat") == ["c", "ca", "cat"]


def test_token_lengths_count_characters():
    t = tok(min_token_len=3, max_token_len=4)
    assert t.document("an мира elephant cat") == ["мира", "cat"]


def test_stopwords_follow_lowercase():
    assert tok(stopwords={"custom": ["Hello"]}).document("hello HELLO there") == ["there"]
    t = tok(lowercase=False, stopwords={"custom": ["Hello"]})
    assert t.document("Hello hello") == ["hello"]
    assert "and" in language_stopwords("english") and "und" in language_stopwords("german")


def test_stemmer():
    t = tok(stemmer={"type": "snowball", "language": "english"})
    assert t.document("running dogs") == ["run", "dog"]


def test_matching_rules():
    text = {parse_path("t"): tok(tokenizer="prefix")}
    flt = compile_filter({"must": [{"key": "t", "match": {"text": "run"}}]}, text=text)
    assert [flt.matches(1, {"t": s}, ()) for s in ("running dogs", "the runner", "a run", "ran")] == \
        [True, True, True, False]
    empty = compile_filter({"must": [{"key": "t", "match": {"text_any": "!!"}}]}, text=text)
    assert not empty.matches(1, {"t": "anything"}, ())
    phrase = {parse_path("t"): tok(phrase_matching=True)}
    flt = compile_filter({"must": [{"key": "t", "match": {"phrase": "Brown Fox"}}]}, text=phrase)
    assert flt.matches(1, {"t": "the brown fox"}, ()) and not flt.matches(1, {"t": "fox brown"}, ())
    without = compile_filter({"must": [{"key": "t", "match": {"phrase": "brown fox"}}]}, text={parse_path("t"): tok()})
    assert not without.matches(1, {"t": "the brown fox"}, ())


@pytest.mark.parametrize("params", [{"tokenizer": "multilingual"}, {"tokenizer": "code"}, {"ascii_folding": True},
                                    {"scoring": True}, {"nested": "x"}, {"stopwords": "japanese"},
                                    {"stopwords": "klingon"}, {"stemmer": {"type": "snowball", "language": "latin"}},
                                    {"min_token_len": -1}, {"lowercase": "yes"}, {"unknown": 1}])
def test_refused(params):
    with pytest.raises(BadRequest):
        tok(**params)
