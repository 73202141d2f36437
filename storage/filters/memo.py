"""``first_n_memo``: the cache behind the filter helpers that parse payload values.

Filters re-read the same payload strings on every scan, in the same order each time:
an LRU cache drops to a 0% hit rate as soon as a scan sees more distinct strings than
it holds. Keeping the first entries and never evicting gives a steady hit rate instead.
"""
from __future__ import annotations

from typing import Any, Callable

_MISSING = object()


def first_n_memo(fn: Callable[[Any], Any], capacity: int,
                 max_len: int | None = None) -> Callable[[Any], Any]:
    """Memoize ``fn``, keeping the first ``capacity`` results and never evicting.

    Strings longer than ``max_len`` are not kept, to bound the memory a memo can pin.
    The result has a ``clear()`` that empties the memo.
    """
    memo: dict[Any, Any] = {}

    def memoized(key: Any) -> Any:
        result = memo.get(key, _MISSING)
        if result is _MISSING:
            result = fn(key)
            if len(memo) < capacity and (max_len is None or len(key) <= max_len):
                memo[key] = result
        return result

    memoized.clear = memo.clear  # type: ignore[attr-defined]
    return memoized
