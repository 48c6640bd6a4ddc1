"""The LiteRT export of a trained model: the same forward pass as Keras, and forecasts without TF."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import F, array_config, problem
from typer.testing import CliRunner

from aqi import exported, trained
from aqi.cli import app
from aqi.config import AqiError
from aqi.model import build_model
from aqi.store import read_station


@pytest.fixture
def data(template, tmp_path):
    shutil.copytree(template / "data", tmp_path / "data")
    return tmp_path / "data"


def _windows(tm, data_dir):
    return tm.windows(read_station(data_dir, tm.station)).part("test").x


def test_a_saved_model_predicts_through_its_litert_file_as_keras_does(data):
    tm = trained.load(data, "Synth")
    assert tm.runner is not None and tm.model is None  # nothing read through Keras yet
    x = _windows(tm, data)
    lite = tm.predict(x, None)
    keras_raw = trained.predict(tm.keras_model(), x)
    np.testing.assert_allclose(
        lite.point, keras_raw[..., 0] if keras_raw.ndim == 3 else keras_raw, rtol=1e-4, atol=1e-3
    )
    assert lite.point.shape == (len(x), tm.config.window.horizon)
    assert tm.predict(x[:0], None).point.shape == (0, tm.config.window.horizon)


def test_forecast_and_evaluate_never_import_tensorflow(data, network_store):
    code = (
        "import sys; from pathlib import Path; from aqi.forecast import forecast_stations;"
        f"own, _ = forecast_stations(Path({str(data)!r}), 'all');"
        f"net, _ = forecast_stations(Path({str(network_store)!r}), 'all');"
        "assert [r['model']['kind'] for r in own + net] == ['station'] * 2 + ['network'] * 3;"
        "assert {r['model']['runtime'] for r in own + net} == {'litert'};"
        "from typer.testing import CliRunner; from aqi.cli import app;"
        f"args = ['--data-dir', {str(data)!r}, 'evaluate', '--station', 'Synth', '-q'];"
        "r = CliRunner().invoke(app, args);"
        "assert r.exit_code == 0, r.output;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_model_saved_before_the_export_predicts_through_keras(data):
    before = trained.load(data, "Synth")
    folder = before.path
    (folder / exported.LITE_FILE).unlink()
    meta = json.loads((folder / trained.META_FILE).read_text())
    del meta["lite_sha256"], meta[trained.META_SHA]  # neither existed then
    (folder / trained.META_FILE).write_text(json.dumps(meta))
    old = trained.load(data, "Synth")
    assert old.runner is None and old.model is not None
    x = _windows(old, data)
    np.testing.assert_allclose(
        old.predict(x, None).point, before.predict(x, None).point, rtol=1e-4, atol=1e-3
    )


def test_a_damaged_litert_file_is_one_line_and_exit_2(data):
    folder = trained.load(data, "Synth").path
    (folder / exported.LITE_FILE).write_bytes(b"not a flatbuffer")
    with pytest.raises(AqiError, match="model.tflite does not match meta.json"):
        trained.load(data, "Synth")
    meta = json.loads((folder / trained.META_FILE).read_text())
    meta["lite_sha256"] = trained._sha256(folder / exported.LITE_FILE)  # a matching hash
    meta[trained.META_SHA] = trained.meta_digest(meta)
    (folder / trained.META_FILE).write_text(json.dumps(meta))
    r = CliRunner().invoke(app, ["--data-dir", str(data), "forecast", "--station", "Synth"])
    assert r.exit_code == 2 and "model.tflite: cannot be loaded" in r.output, r.output
    assert "Traceback" not in r.output


def test_an_export_that_differs_from_keras_is_not_kept_and_keras_predicts(data, monkeypatch):
    tm = trained.load(data, "Synth")
    model = tm.keras_model()
    real = exported.Runner.__call__
    with monkeypatch.context() as m:
        m.setattr(exported.Runner, "__call__", lambda self, x, batch=4096: real(self, x) + 1.0)
        again = trained.TrainedModel(
            "Synth", model, tm.config, tm.scaler, tm.split, tm.timezone, tm.standard, tm.info
        ).save(data)
    assert not (again.path / exported.LITE_FILE).exists() and not again.lite_sha256
    assert again.info["lite_error"] == "the LiteRT export does not reproduce the Keras model"
    back = trained.load(data, "Synth")  # the new version is live, its forecasts through Keras
    assert back.path == again.path and back.runner is None
    x = _windows(back, data)
    np.testing.assert_allclose(
        back.predict(x, None).point, tm.predict(x, None).point, rtol=1e-4, atol=1e-3
    )


def test_a_recurrent_model_is_exported_unrolled_with_the_same_outputs(tmp_path):
    cfg = array_config().replace(model={"arch": "gru", "head": "level", "layers": 2})
    model = build_model(cfg, F, (40.0, 30.0))
    exported.export(model, tmp_path / "gru.tflite")  # a GRU's while-loop would need TF's Flex ops
    x, _ = problem()
    want = np.asarray(model(x, training=False))
    np.testing.assert_allclose(exported.Runner(tmp_path / "gru.tflite")(x), want, rtol=1e-5, atol=1e-4)
