"""Qdrant filters: validation of the REST JSON, and one evaluator for every endpoint.

``compile_filter(raw)`` checks a filter exactly once per request and turns it into a
tree of small closures; ``Filter.matches(point_id, payload, vector_names)`` then runs
per point without looking at the JSON again. Scroll, count, search/query,
delete-by-filter and every payload/vector update by filter must go through this one
package, so a filter can never select different points depending on the endpoint.

Semantics are those of the Qdrant server, as reproduced by qdrant-client's local mode
(``qdrant_client/local/payload_filters.py``), which ``tests/unit/test_filters.py``
uses as a differential oracle. ``filter.py`` holds the boolean structure: ``must``
all, ``must_not`` none, ``should`` at least one (an empty ``should`` list constrains
nothing), ``min_should`` at least ``min_count`` (>= 1) of its conditions. Each clause
may be one condition or a list; a filter nests as a condition, and ``nested`` applies
one to the elements of an array, where ``has_id``/``has_vector``/``slice`` never
hold (elements have no id or vectors).

The conditions themselves live beside it:

- ``storage.filters.conditions``: field conditions (values, counts, emptiness, ranges),
  ``has_id``, ``has_vector``; with ``storage.filters.match`` (``match``), ``storage.filters.text``
  (full-text words), ``storage.filters.datetimes`` (datetime ranges) and ``storage.filters.geo``.
- ``storage.filters.slices``: ``slice``.
- ``storage.filters.matchers``: the compiled form and the and/or/not combinators.
- ``storage.filters.json_body``: reading the JSON with the server's error messages: a body
  without the right shape is a 400 ``Format error in JSON body: ...``; a well-formed
  value the validator refuses (``min_count: 0``, an open polygon, a field condition
  with no condition) is a 422 ``Validation error in JSON body: [...]``.
"""
from storage.filters.datetimes import parse_datetime
from storage.filters.filter import Filter, compile_filter, merge_filters

__all__ = ["Filter", "compile_filter", "merge_filters", "parse_datetime"]
