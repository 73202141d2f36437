"""The dependency direction api -> streams -> storage, and storage free of runtime
(no event loop, threads, processes or environment reads), checked on the source."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
RUNTIME = {"asyncio", "multiprocessing", "threading", "concurrent", "subprocess"}
FORBIDDEN = {"storage": {"api", "streams", "aiokafka", "faust", "starlette", "grpc"} | RUNTIME,
             "streams": {"api", "starlette", "grpc"}}


def _imports(tree: ast.AST) -> set:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and \
                {a.name for a in node.names} & {"environ", "getenv", "environb"}:
            return True
    return False


def _modules(package: str) -> list:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    for path in _modules(package):
        bad = _imports(ast.parse(path.read_text())) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_storage_does_not_read_the_environment():
    for path in _modules("storage"):
        assert not _reads_environment(ast.parse(path.read_text())), \
            f"{path.relative_to(ROOT)} reads the environment; settings come from streams.settings"


def test_only_the_settings_module_reads_the_environment():
    readers = [str(p.relative_to(ROOT)) for pkg in ("api", "streams", "storage") for p in _modules(pkg)
               if _reads_environment(ast.parse(p.read_text()))]
    assert readers == [], readers

