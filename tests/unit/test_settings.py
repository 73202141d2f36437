"""One settings object: flags over POINTLOG_* variables over defaults, every setting
documented."""
import argparse
import pathlib

import pytest

from api.cli import main
from streams.settings import NODE, Settings, add_flags, from_args

ROOT = pathlib.Path(__file__).resolve().parents[2]


def parse(argv, names=NODE) -> Settings:
    parser = argparse.ArgumentParser()
    add_flags(parser, names)
    return from_args(parser.parse_args(argv))


def test_a_flag_beats_the_environment_which_beats_the_default(monkeypatch):
    assert parse([]).index_threshold == 20000
    monkeypatch.setenv("POINTLOG_INDEX_THRESHOLD", "500")
    monkeypatch.setenv("POINTLOG_KAFKA_BOOTSTRAP", "broker:1")
    assert parse([]).index_threshold == 500
    got = parse(["--index-threshold", "7", "--port", "7000"])
    assert (got.index_threshold, got.port, got.kafka_bootstrap) == (7, 7000, "broker:1")
    assert got.index.threshold == 7  # the storage layer's view of the same setting


def test_every_node_setting_is_a_flag():
    assert set(NODE) == set(Settings.model_fields)  # serve takes them all


def test_a_bad_value_is_refused_naming_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("POINTLOG_INDEX_TREES", "0")
    assert main(["digest", "--data-dir", "/nonexistent"]) == 1
    assert "index_trees" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["--port", "many"])


def test_the_readme_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`POINTLOG_{name.upper()}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


def test_topics_get_three_copies_and_a_majority_when_the_cluster_has_three_brokers():
    from streams.topics import durability
    assert durability(1) == (1, 1)
    assert durability(2) == (2, 1)
    assert durability(3) == (3, 2)
    assert durability(5) == (3, 2)
    assert durability(5, replication=5) == (5, 3)
    assert durability(3, min_insync=3) == (3, 3)
    with pytest.raises(ValueError):
        durability(3, replication=2, min_insync=3)
