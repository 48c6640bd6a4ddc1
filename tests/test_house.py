"""The house rules, checked: the import graph runs one way, modules and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "aqi"
# Data flow: ingest → store → windows → model/losses → loop → train → evaluate/forecast, with the
# foundations below all. A module may import only modules of strictly earlier layers. The store is
# the stage both ingest (which writes it) and windows/train (which read it) rest on, so `store`
# comes before `ingest`; report and plots only render, so they sit with the foundations.
LAYERS = [
    {"config"},
    {"tomlfile"},
    {"term", "tfboot", "levels", "datadir"},
    {"summary", "checks"},  # checks knows the standards' keys
    {
        "concentrations",
        "report",
        "forecast_view",
        "plots",
        "mapping",
        "download",
        "cpus",
        "shards",
        "split",
        "feeds",
        "sources",
        "deltas",
    },
    {"metrics", "prediction"},
    {"readers", "store"},
    {"upsert"},
    {"ingest", "locations"},
    {"features"},
    {"windows"},
    {"baselines", "gbm", "model", "exported", "losses", "devices", "stream", "network"},
    {"loop", "trained", "lbfgs", "checkpoints"},
    {"job", "resolve", "gap_skill"},
    {"train"},
    {"finetune"},
    {"train_network"},
    {"evaluate", "forecast"},
    {"cli"},
    {"__main__"},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40  # body, without the signature and docstring


def modules() -> list[Path]:
    return sorted(p for p in PKG.glob("*.py") if p.stem != "__init__")


def aqi_imports(path: Path) -> set[str]:
    """Every `aqi.<module>` this file imports, at the top or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aqi"):
            parts = node.module.split(".")
            out |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name.split(".")[1] for a in node.names if a.name.startswith("aqi.")}
    return out - {"__version__"}


def test_every_module_has_a_layer():
    assert {p.stem for p in modules()} == set(RANK)


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.stem)
def test_imports_run_one_way(path):
    later = {m for m in aqi_imports(path) if RANK[m] >= RANK[path.stem]}
    assert not later, f"aqi/{path.name} imports {sorted(later)}, which are not earlier stages"


@pytest.mark.parametrize("path", modules(), ids=lambda p: p.stem)
def test_small_modules_and_functions(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"aqi/{path.name}: {len(lines)} lines"
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        body = node.body[1:] if ast.get_docstring(node) else node.body
        size = body[-1].end_lineno - body[0].lineno + 1 if body else 0
        assert size <= MAX_FUNCTION_LINES, f"aqi/{path.name}: {node.name} is {size} lines"


def test_rules_can_fail(tmp_path):
    """The checks above see a backward import inside a function and a long function."""
    bad = tmp_path / "windows.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(45))
    bad.write_text(f"def f():\n    from aqi.train import train_station\n{body}\n")
    assert "train" in aqi_imports(bad)
    with pytest.raises(AssertionError):
        test_imports_run_one_way(bad)
    with pytest.raises(AssertionError, match="is 46 lines"):
        test_small_modules_and_functions(bad)
