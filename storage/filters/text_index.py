"""Full-text index params (a ``text`` field_schema) and the tokenizer they define.

A collection's text index is declared by a logged ``create_field_index`` and lives in
its payload_schema; the tokenizer built from it is derived state. With one on a key,
``match.text``/``text_any``/``phrase`` on that key tokenize the query and the payload
strings as the server's full-text index does (lib/segment/src/index/field_index/
full_text_index/tokenizers): split into words (``word``, ``prefix``: runs of
alphanumeric characters; ``whitespace``: whitespace-separated), lowercase (default on),
drop stopwords, stem, then drop tokens shorter than ``min_token_len`` or longer than
``max_token_len`` characters. ``prefix`` indexes every prefix of each word (from
``min_token_len`` to ``max_token_len`` characters) and tokenizes a query word as its
own longest allowed prefix, without stopwords, so ``run`` matches ``running``.

Matching, as the server's index answers it: ``text`` needs every query token among the
document's tokens, ``text_any`` one of them, and a query with no tokens matches nothing.
``phrase`` tokenizes the query as a document and needs its tokens consecutively and in
order; it needs ``phrase_matching: true`` (the server keeps token positions only then,
and without them a phrase query matches no point).

Stopword lists are NLTK's stopwords corpus for the languages the server ships
(``stopwords/``, from the ``stop-words`` crate's NLTK data; English as Qdrant ships it);
stemmers are Snowball's (``snowballstemmer``, which runs PyStemmer's C build of the same
algorithms). Refused with a 400 that names them, because no maintained Python library
reproduces them: the ``multilingual`` and ``code`` tokenizers (charabia and the
server's code splitter), ``ascii_folding``, BM25 ``scoring``, ``nested`` text indexes
and ``japanese`` stopwords.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Callable

import snowballstemmer

from storage.errors import BadRequest
from storage.filters.memo import first_n_memo

TOKENIZERS = ("prefix", "whitespace", "word", "multilingual", "code")
_SUPPORTED_TOKENIZERS = ("prefix", "whitespace", "word")
STOPWORD_LANGUAGES = ("arabic", "azerbaijani", "basque", "bengali", "catalan", "chinese", "danish", "dutch",
                      "english", "finnish", "french", "german", "greek", "hebrew", "hinglish", "hungarian",
                      "indonesian", "italian", "japanese", "kazakh", "nepali", "norwegian", "portuguese",
                      "romanian", "russian", "slovene", "spanish", "swedish", "tajik", "turkish")
SNOWBALL_LANGUAGES = ("arabic", "armenian", "danish", "dutch", "english", "finnish", "french", "german", "greek",
                      "hungarian", "italian", "norwegian", "portuguese", "romanian", "russian", "spanish",
                      "swedish", "tamil", "turkish")
# snowballstemmer 3 names the classic Dutch algorithm (the one rust-stemmers, and so
# the server, runs) dutch_porter; its "dutch" is the newer Kraaij-Pohlmann one.
_SNOWBALL_NAMES = {"dutch": "dutch_porter"}

_PARAMS = ("type", "tokenizer", "min_token_len", "max_token_len", "lowercase", "ascii_folding",
           "phrase_matching", "stopwords", "on_disk", "memory", "stemmer", "enable_hnsw", "scoring", "nested")
# Storage hints of the server's index: where it keeps postings. They change no answer.
_HINTS = ("on_disk", "memory", "enable_hnsw")

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits (the server splits on !is_alphanumeric)


def _fail(where: str, message: str) -> BadRequest:
    return BadRequest(f"Format error in JSON body: {where}: {message}")


def _variant(value, choices, where: str) -> str:
    if value not in choices:
        raise _fail(where, f"unknown variant `{value}`, expected one of {', '.join(f'`{c}`' for c in choices)}")
    return value


def _flag(params: dict, name: str, where: str) -> bool | None:
    value = params.get(name)
    if value is not None and type(value) is not bool:
        raise _fail(f"{where}.{name}", "invalid type, expected a boolean")
    return value


def _length(params: dict, name: str, where: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _fail(f"{where}.{name}", f"invalid value: `{value}`, expected usize")
    return value


@cache
def language_stopwords(language: str) -> tuple[str, ...]:
    text = resources.files("storage.filters").joinpath("stopwords", f"{language}.txt").read_text("utf-8")
    return tuple(word for word in text.split("\n") if word)


def _stopwords(raw, lowercase: bool, where: str) -> frozenset:
    if raw is None:
        return frozenset()
    if isinstance(raw, str):
        languages, custom = [raw], []
    elif isinstance(raw, dict):
        unknown = set(raw) - {"languages", "custom"}
        if unknown:
            raise _fail(where, f"unknown field `{sorted(unknown)[0]}`, expected `languages` or `custom`")
        languages, custom = raw.get("languages") or [], raw.get("custom") or []
        if not isinstance(languages, list) or not isinstance(custom, list) \
                or not all(isinstance(w, str) for w in custom):
            raise _fail(where, "expected {\"languages\": [...], \"custom\": [strings]}")
    else:
        raise _fail(where, "expected a language or {\"languages\": [...], \"custom\": [...]}")
    words = set()
    for language in languages:
        _variant(language, STOPWORD_LANGUAGES, where)
        if language == "japanese":
            raise BadRequest(f"Bad request: `{where}`: japanese stopwords are not supported by pointlog")
        words.update(language_stopwords(language))
    words.update(custom)
    return frozenset(w.lower() for w in words) if lowercase else frozenset(words)


def _stemmer(raw, where: str) -> Callable[[str], str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _fail(where, "expected {\"type\": \"snowball\", \"language\": ...}")
    kind = _variant(raw.get("type"), ("snowball", "disabled"), f"{where}.type")
    if kind == "disabled":
        return None
    unknown = set(raw) - {"type", "language"}
    if unknown:
        raise _fail(where, f"unknown field `{sorted(unknown)[0]}`")
    language = _variant(raw.get("language"), SNOWBALL_LANGUAGES, f"{where}.language")
    stemmer = snowballstemmer.stemmer(_SNOWBALL_NAMES.get(language, language))
    # Words repeat far more than they vary: stem each once (bounded).
    return lru_cache(maxsize=1 << 16)(stemmer.stemWord)


@dataclass(frozen=True, eq=False)
class Tokenizer:
    kind: str  # word | whitespace | prefix
    lowercase: bool
    min_len: int | None
    max_len: int | None
    stopwords: frozenset
    stem: Callable[[str], str] | None
    phrase_matching: bool

    def __post_init__(self):
        # Scans tokenize the same payload strings for every query: keep them per index.
        object.__setattr__(self, "sequence", first_n_memo(lambda t: tuple(self.document(t)), 1 << 15, 256))
        object.__setattr__(self, "set", first_n_memo(lambda t: frozenset(self.document(t)), 1 << 15, 256))

    def _words(self, text: str) -> list[str]:
        words = text.split() if self.kind == "whitespace" else _WORD.findall(text)
        return [w.lower() for w in words] if self.lowercase else words

    def _fits(self, token: str) -> bool:
        n = len(token)
        return not ((self.min_len is not None and n < self.min_len)
                    or (self.max_len is not None and n > self.max_len))

    def document(self, text: str) -> list[str]:
        """The tokens of a payload string, in order (prefixes follow their word)."""
        out = []
        for word in self._words(text):
            if word in self.stopwords:
                continue
            if self.stem is not None:
                word = self.stem(word)
            if self.kind != "prefix":
                if self._fits(word):
                    out.append(word)
                continue
            low = self.min_len or 1
            high = len(word) if self.max_len is None else self.max_len
            for n in range(low, high + 1):
                token = word[:n] if n < len(word) else word
                if self._fits(token):
                    out.append(token)
                if n >= len(word):
                    break
        return out

    def query(self, text: str) -> list[str]:
        """The tokens of a ``text``/``text_any`` query."""
        if self.kind != "prefix":
            return self.document(text)
        out = []
        for word in self._words(text):  # no stopwords: a typed prefix may be one
            if self.stem is not None:
                word = self.stem(word)
            if self.max_len is not None:
                word = word[:self.max_len]
            if self._fits(word):
                out.append(word)
        return out


def text_tokenizer(schema, where: str = "field_schema") -> Tokenizer:
    """The tokenizer of a ``text`` field_schema (the name alone, or its params);
    BadRequest for params the server refuses or pointlog does not implement."""
    params = schema if isinstance(schema, dict) else {}
    for name in params:
        if name not in _PARAMS:
            raise _fail(where, f"unknown field `{name}`")
    kind = _variant(params.get("tokenizer") or "word", TOKENIZERS, f"{where}.tokenizer")
    if kind not in _SUPPORTED_TOKENIZERS:
        raise BadRequest(f"Bad request: `{where}.tokenizer: {kind}` is not supported by pointlog")
    for name in ("ascii_folding", "scoring"):
        if params.get(name) not in (None, False):
            raise BadRequest(f"Bad request: `{where}.{name}` is not supported by pointlog")
    if params.get("nested") is not None:
        raise BadRequest(f"Bad request: `{where}.nested` is not supported by pointlog")
    lowercase = _flag(params, "lowercase", where)
    lowercase = True if lowercase is None else lowercase
    phrase = bool(_flag(params, "phrase_matching", where))
    min_len, max_len = _length(params, "min_token_len", where), _length(params, "max_token_len", where)
    return Tokenizer(kind, lowercase, min_len, max_len, _stopwords(params.get("stopwords"), lowercase,
                                                                   f"{where}.stopwords"),
                     _stemmer(params.get("stemmer"), f"{where}.stemmer"), phrase)
