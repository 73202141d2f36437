"""Strict mode's filter measures and its unindexed-key extractor (Qdrant's rules)."""
import pytest

from storage import strict_mode
from storage.errors import BadRequest, Unprocessable
from storage.strict_config import check_config, merged


def test_conditions_count_and_size():
    flt = {"must": [{"key": "a", "match": {"any": [1, 2, 3]}},
                    {"nested": {"key": "n", "filter": {"must": [{"key": "x", "match": {"value": 1}},
                                                                {"has_id": [1, 2, 3, 4]}]}}},
                    {"should": [{"key": "b", "match": {"value": "v"}}]}],
           "min_should": {"conditions": [{"key": "c", "range": {"gt": 1}}], "min_count": 1}}
    assert strict_mode.conditions_count(flt) == 5
    assert strict_mode.max_condition_size(flt) == 4


def test_unindexed_key_and_the_kinds_that_serve_it():
    flt = {"must": [{"key": "city", "match": {"value": "Berlin"}}, {"key": "n", "range": {"gte": 1.5}}]}
    assert strict_mode._unindexed({}, flt)[0] == "city"
    assert strict_mode._unindexed({"city": "keyword"}, flt) == ("n", ["float_range", "int_range"])
    assert strict_mode._unindexed({"city": "keyword", "n": "integer"}, flt) is None
    assert strict_mode._unindexed({"t": "text"}, {"must": [{"key": "t", "match": {"phrase": "a b"}}]})[0] == "t"
    assert strict_mode._unindexed({"t": {"type": "text", "phrase_matching": True}},
                                  {"must": [{"key": "t", "match": {"phrase": "a b"}}]}) is None
    assert strict_mode._unindexed({"d[].x": "integer"},
                                  {"must": [{"nested": {"key": "d", "filter": {"must": [
                                      {"key": "x", "match": {"value": 1}}]}}}]}) is None
    assert strict_mode._unindexed({}, {"must": [{"key": "a", "match": {"any": []}}, {"has_id": [1]}]}) is None


def test_config_validation_and_merge():
    assert merged({"enabled": True, "max_query_limit": 5}, {"max_query_limit": None, "max_timeout": 3}) == \
        {"enabled": True, "max_query_limit": 5, "max_timeout": 3}
    for bad, error in [({"max_query_limit": 0}, Unprocessable), ({"enabled": 1}, BadRequest),
                       ({"read_rate_limit": 5}, BadRequest), ({"bogus": 1}, BadRequest),
                       ({"sparse_config": {"s": {"max_length": 0}}}, Unprocessable)]:
        with pytest.raises(error):
            check_config(bad)
