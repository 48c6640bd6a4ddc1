"""`aqi train` at the CLI boundary: bad options are one line, exit 2, nothing written."""

from __future__ import annotations

import shutil

import pytest
from conftest import tree_digest
from typer.testing import CliRunner

from aqi.cli import app
from aqi.resolve import load
from aqi.store import read_station

runner = CliRunner()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--station", "Nowhere"], "unknown station 'Nowhere'"),
        (["--station", "Synth", "--alpha", "1.5"], "--alpha 1.5: out of range"),
        (["--station", "Synth", "--horizon", "0"], "--horizon 0: out of range"),
        (["--station", "Synth", "--optimizer", "adagrad"], "--optimizer 'adagrad': use one of"),
        (["--station", "Synth", "--device", "gpu"], "--device gpu: no GPU visible"),
        (["--station", "Synth", "--lookback", "5000"], "longer than the 2880 hours"),
        (["--station", "Synth", "--quantiles", "0.9,0.1"], "--quantiles"),
        (["--station", "Synth", "--quantiles", "0.1,0.9"], "--quantiles"),  # no median
        (["--station", "X/../../outside"], "--station: invalid station name"),
        (["--station", "Synth", "--miss-cost", "inf"], "--miss-cost inf: out of range"),
        (["--station", "Synth", "--level-ramp", "0"], "--level-ramp 0.0: out of range"),
        (["--station", "Synth", "--level-epochs", "-1"], "--level-epochs -1: out of range"),
        (["--station", "Synth", "--level-epochs", "2"], "--level-epochs 2: needs a detached level"),
        (["--station", "Synth", "--threads", "0"], "--threads 0: give 1.."),
        (["--station", "Synth", "--threads", "99999"], "--threads 99999: give 1.."),
        (["--station", "Synth", "--quantiles", ""], "--quantiles '': comma-separated numbers"),
        (["--station", "Synth", "--test-months", "12", "--val-end", "2016-04-01"], "with --val-end"),
        (["--station", "Synth", "--term-standard", "who"], "--term-standard 'who': use one of"),
        (["--station", "Synth", "--level-loss", "hinge"], "--level-loss 'hinge': use one of"),
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


def test_cli_trains_with_given_split_dates(synth_store, tmp_path):
    r = runner.invoke(
        app,
        [
            "--data-dir",
            str(synth_store),
            "train",
            "--station",
            "Synth",
            "-q",
            "--train-end",
            "2016-03-20 23:00",
            "--val-end",
            "2016-04-09 23:00",
            "--test-end",
            "2016-04-29 23:00",
            "--epochs",
            "1",
            "--members",
            "1",
            "--hidden",
            "8",
            "--horizon",
            "6",
            "--device",
            "cpu",
            "--tensorboard",
            str(tmp_path / "tb"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Synth: 1 member(s), val MAE" in r.output


def test_test_months_0_trains_on_the_latest_data_with_no_test_split(synth_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(synth_store, d)
    args = ["train", "--station", "Synth", "-q", "--test-months", "0", "--epochs", "1", "--members"]
    args += ["1", "--hidden", "8", "--device", "cpu", "--train-end", "2016-04-09"]  # 4 months of data
    r = runner.invoke(app, ["--data-dir", str(d), *args])
    assert r.exit_code == 0, r.output
    tm = load(d, "Synth")
    last = read_station(d, "Synth")["time"].max().tz_convert(tm.timezone)
    assert tm.split.val_end == tm.split.test_end == last  # validation runs to the last hour
    assert str(tm.split.train_end) == "2016-04-09 23:00:00+08:00"
    assert tm.config.window.test_months == 0  # the artifact carries the config it was built with


MULTI_WORKER = """
import json, os, socket, sys
sys.path.insert(0, "tests")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]},
                                      "task": {"type": "worker", "index": 0}})
from conftest import tiny_config
from aqi.train import train_station
said = []
meta = train_station(sys.argv[1], "Synth", tiny_config(epochs=1), quiet=True, echo=said.append)
print(meta["device"])
"""


def test_tf_config_selects_multi_worker_strategy(synth_store):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", MULTI_WORKER, str(synth_store)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MultiWorkerMirroredStrategy" in out.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("command", ["train", "evaluate", "forecast"])
def test_a_station_name_never_leaves_the_data_folder(synth_store, tmp_path, command):
    before = tree_digest(synth_store.parent)
    r = runner.invoke(app, ["--data-dir", str(synth_store), command, "--station", "../../evil"])
    assert r.exit_code == 2 and "invalid station name '../../evil'" in r.output
    assert tree_digest(synth_store.parent) == before


def test_config_fields_are_set_by_name_in_their_section():
    from aqi.config import Config

    cfg = Config().with_fields(epochs=3, alpha=0.9, lookback=48, hidden=8, station="ignored")
    assert (cfg.train.epochs, cfg.loss.alpha, cfg.window.lookback, cfg.model.hidden) == (3, 0.9, 48, 8)
    assert Config.from_dict(cfg.to_dict()) == cfg
