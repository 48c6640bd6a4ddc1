"""`aqi train` at the CLI boundary: bad options are one line, exit 2, nothing written."""

from __future__ import annotations

import pytest
from conftest import tree_digest
from typer.testing import CliRunner

from aqi.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--station", "Nowhere"], "unknown station 'Nowhere'"),
        (["--station", "Synth", "--alpha", "1.5"], "--alpha 1.5: out of range"),
        (["--station", "Synth", "--horizon", "0"], "--horizon 0: out of range"),
        (["--station", "Synth", "--optimizer", "adagrad"], "--optimizer 'adagrad': use one of"),
        (["--station", "Synth", "--device", "gpu"], "--device gpu: no GPU visible"),
        (["--station", "Synth", "--lookback", "5000"], "too little"),
        (["--station", "Synth", "--quantiles", "0.9,0.1"], "--quantiles"),
    ],
)
def test_bad_train_options(synth_store, args, message):
    before = tree_digest(synth_store)
    r = runner.invoke(app, ["--data-dir", str(synth_store), "train", *args, "--quiet"])
    assert r.exit_code == 2, r.output
    assert message in r.output and r.output.count("\n") == 1
    assert tree_digest(synth_store) == before


def test_unknown_station_lists_known_ones(synth_store):
    r = runner.invoke(app, ["--data-dir", str(synth_store), "train", "--station", "X"])
    assert "known: Synth" in r.output
