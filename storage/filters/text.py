"""Full-text matching (``match.text``/``text_any``/``phrase``) without a text index.

pointlog has no full-text index, so it does what the server does then: split both
the query and the payload string into lowercased alphanumeric words. ``text`` needs
every query word, ``text_any`` one, ``phrase`` all of them consecutively; a query
without words matches nothing.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from storage.filters.memo import first_n_memo

_WORD = re.compile(r"[^\W_]+")  # runs of letters/digits: the server's default word tokenizer
_ASCII_WORD = re.compile(r"[a-z0-9]+")  # the same on lowercased ASCII text


def tokens(text: str) -> tuple[str, ...]:
    if text.isascii():
        # ASCII lowercasing is per character, so it can come first
        return tuple(_ASCII_WORD.findall(text.lower()))
    # Otherwise split first and lowercase each word: lowercasing can change what is a
    # word character (e.g. "İ" -> "i̇"), and the server tokenizes before it lowercases.
    return tuple(token.lower() for token in _WORD.findall(text))


# a scan tokenizes the same payload strings again for every query
_token_set = first_n_memo(lambda text: frozenset(tokens(text)), capacity=1 << 15, max_len=256)


def match_text(query: str) -> Callable[[Any], bool]:
    wanted = frozenset(tokens(query))
    if not wanted:
        return lambda x: False
    return lambda x: type(x) is str and wanted <= _token_set(x)


def match_text_any(query: str) -> Callable[[Any], bool]:
    wanted = frozenset(tokens(query))
    if not wanted:
        return lambda x: False
    return lambda x: type(x) is str and not wanted.isdisjoint(_token_set(x))


def match_phrase(query: str) -> Callable[[Any], bool]:
    phrase = tokens(query)
    if not phrase:
        return lambda x: False
    n = len(phrase)
    first = phrase[0]

    def pred(x):
        if type(x) is not str:
            return False
        words = tokens(x)
        for i in range(len(words) - n + 1):
            if words[i] == first and words[i:i + n] == phrase:
                return True
        return False

    return pred


# ---------------------------------------------------------------- with a text index

def indexed_matcher(kind: str, query: str, tokenizer) -> Callable[[Any], bool]:
    """``text``/``text_any``/``phrase`` on a key with a text index (see
    storage.filters.text_index for the tokenizer and the matching rules)."""
    if kind == "phrase":
        phrase = tuple(tokenizer.document(query))
        if not phrase or not tokenizer.phrase_matching:
            return lambda x: False
        n = len(phrase)

        def has_phrase(x):
            if type(x) is not str:
                return False
            words = tokenizer.sequence(x)
            return any(words[i:i + n] == phrase for i in range(len(words) - n + 1))

        return has_phrase
    wanted = frozenset(tokenizer.query(query))
    if not wanted:
        return lambda x: False
    if kind == "text":
        return lambda x: type(x) is str and wanted <= tokenizer.set(x)
    return lambda x: type(x) is str and not wanted.isdisjoint(tokenizer.set(x))
