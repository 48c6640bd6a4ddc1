"""The custom loop: parity with model.fit, strategy parity, learning, NaN guard, save/load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import tiny_config

from aqi import artifacts
from aqi.config import AqiError, Config
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model
from aqi.train import Loop, NonFiniteLoss, dataset, fit, make_optimizer
from aqi.trainer import train_station

L, H, F = 6, 3, 5


def problem(n=70, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, L, F)).astype(np.float32)
    y = (40 + 30 * x[:, -1, :1] + 10 * x[:, -2, 1:2] + rng.normal(0, 3, (n, H))).astype(np.float32)
    y[3, 1] = np.nan  # a masked target
    return x, np.maximum(y, 0)


def tiny_cfg(**train):
    return Config().replace(
        window={"lookback": L, "horizon": H},
        model={"hidden": 8, "layers": 1, "dropout": 0.0},
        train={
            "epochs": 2,
            "batch_size": 16,
            "schedule": "constant",
            "clipnorm": None,
            "lr": 1e-2,
            "patience": 99,
            "restore_best": False,
        }
        | train,
    )


def two_models(cfg):
    a = build_model(cfg, F, (40.0, 30.0))
    b = build_model(cfg, F, (40.0, 30.0))
    b.set_weights(a.get_weights())
    return a, b


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_custom_loop_matches_model_fit(optimizer):
    """Same batches (no shuffle, a last partial batch of 6), same initial weights and optimizer:
    the same per-step losses and final weights."""
    cfg = tiny_cfg(optimizer=optimizer)
    x, y = problem()
    ours, theirs = two_models(cfg)
    loss = LevelLoss(alpha=0.5, tau=2.0, scale=20.0)
    steps = -(-len(x) // 16)
    loop = Loop(ours, make_optimizer(cfg.train, steps), loss, tf.distribute.get_strategy())
    hist = fit(loop, dataset(x, y, 16, False, 0), dataset(x, y, 16, False, 0), cfg.train, len(x))

    seen = []
    log = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs["loss"]))
    theirs.compile(optimizer=make_optimizer(cfg.train, steps), loss=loss)
    theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[log])
    # Keras logs the running mean over the epoch, weighted by batch size: recover each step's loss
    sizes = np.tile([16] * (steps - 1) + [len(x) - 16 * (steps - 1)], 2)
    per_step = []
    for e in range(2):
        m, n = np.asarray(seen[e * steps : (e + 1) * steps]), sizes[e * steps : (e + 1) * steps]
        cum = np.cumsum(n)
        per_step += list((m * cum - np.r_[0, (m * cum)[:-1]]) / n)
    np.testing.assert_allclose(hist.step_losses, per_step, rtol=2e-4, atol=1e-6)
    for wa, wb in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-4, atol=1e-6)


STRATEGY_PARITY = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, "tests")
    from test_train import problem, tiny_cfg, two_models, F
    from aqi.devices import select_strategy
    from aqi.losses import LevelLoss, tf
    from aqi.model import build_model
    from aqi.train import Loop, dataset, fit, make_optimizer
    n = int(sys.argv[1])
    mirrored, desc = select_strategy("cpus:2")   # logical devices before TF initialises
    cfg = tiny_cfg(epochs=3)
    x, y = problem(n)
    steps = -(-n // 16)
    out = {"desc": desc}
    one, _ = two_models(cfg)
    init = one.get_weights()
    for name, strategy in [("one", tf.distribute.get_strategy()), ("mirrored", mirrored)]:
        with strategy.scope():
            model = build_model(cfg, F, (40.0, 30.0))
            model.set_weights(init)
            loop = Loop(model, make_optimizer(cfg.train, steps), LevelLoss(), strategy)
        ds = lambda: strategy.experimental_distribute_dataset(dataset(x, y, 16, False, 0))
        h = fit(loop, ds(), ds(), cfg.train, n)
        out[name] = {"w": [w.tolist() for w in model.get_weights()], "steps": h.step_losses,
                     "val": h.val_loss}
    print(json.dumps(out))
""")


@pytest.mark.parametrize("n", [70, 69])  # last batch 6 (3 + 3 per replica) and 5 (3 + 2)
def test_mirrored_two_logical_cpus_matches_one_device(n):
    proc = subprocess.run(
        [sys.executable, "-c", STRATEGY_PARITY, str(n)], capture_output=True, text=True, check=True
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["desc"] == "2 logical CPUs (MirroredStrategy)"
    np.testing.assert_allclose(out["mirrored"]["steps"], out["one"]["steps"], rtol=1e-5)
    np.testing.assert_allclose(out["mirrored"]["val"], out["one"]["val"], rtol=1e-5)
    for a, b in zip(out["mirrored"]["w"], out["one"]["w"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_training_learns_and_beats_persistence(synth_store, tmp_path):
    cfg = tiny_config(epochs=6, lr=3e-3).replace(model={"members": 2})
    meta = train_station(
        synth_store, "Synth", cfg, quiet=True, echo=lambda *a: None, tensorboard=tmp_path / "tb"
    )
    assert len(meta["history"]) == 2
    assert list((tmp_path / "tb" / "member-1").glob("events.out.tfevents.*"))
    for h in meta["history"]:
        assert h["train_loss"][-1] < h["train_loss"][0]
    v = meta["validation"]
    assert np.mean(v["model"]["mae"]) < np.mean(v["persistence"]["mae"])
    assert v["model"]["mae"][-1] < v["persistence"]["mae"][-1]  # 6 h ahead: the cycle is learnt


def test_nan_guard_stops_and_keeps_previous_artifacts(synth_store):
    train_station(synth_store, "Synth", tiny_config(epochs=1), quiet=True, echo=lambda *a: None)
    d = artifacts.model_dir(synth_store, "Synth")
    before = {f: (d / f).read_bytes() for f in ("model.keras", "meta.json")}
    bad = tiny_config(epochs=2, optimizer="sgd", lr=1e30, clipnorm=None, schedule="constant")
    with pytest.raises(NonFiniteLoss, match="loss became (nan|inf)"):
        train_station(synth_store, "Synth", bad, quiet=True, echo=lambda *a: None)
    assert {f: (d / f).read_bytes() for f in before} == before
    artifacts.load(synth_store, "Synth")  # the previous model still loads


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(synth_store, monkeypatch):
    real, calls = Loop.train_step, {"n": 0}

    def diverging(self, batch):  # finite through epoch 1, NaN at the first step of epoch 2
        calls["n"] += 1
        out = real(self, batch)
        return out * np.nan if calls["n"] > 30 else out

    monkeypatch.setattr(Loop, "train_step", diverging)
    with pytest.raises(NonFiniteLoss, match="epoch 2"):
        train_station(synth_store, "Synth", tiny_config(epochs=3), quiet=True, echo=lambda *a: None)
    ckpt_dir = artifacts.model_dir(synth_store, "Synth") / "ckpt" / "member-0"
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-1")  # epoch 1, good


def test_saved_model_loads_safely_with_identical_predictions(tmp_path):
    cfg = tiny_cfg()
    model = build_model(cfg, F, (40.0, 30.0))
    x, _ = problem()
    artifacts.save(model, {"config": cfg.to_dict()}, tmp_path, "S")
    loaded, meta = artifacts.load(tmp_path, "S")
    np.testing.assert_array_equal(artifacts.predict(loaded, x), artifacts.predict(model, x))
    assert artifacts.config_of(meta) == cfg


def test_torn_artifacts_are_detected(tmp_path):
    cfg = tiny_cfg()
    artifacts.save(build_model(cfg, F, (40.0, 30.0)), {"config": cfg.to_dict()}, tmp_path, "S")
    (tmp_path / "models" / "S" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(AqiError, match="does not match meta.json"):
        artifacts.load(tmp_path, "S")


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_architectures_output_nonnegative_horizons(arch):
    cfg = tiny_cfg().replace(model={"arch": arch})
    model = build_model(cfg, F, (40.0, 30.0))
    out = artifacts.predict(model, problem()[0] * 50)
    assert out.shape == (70, H) and (out >= 0).all()


def test_resume_continues_from_the_last_epoch_checkpoint(synth_store, monkeypatch):
    cfg = tiny_config(epochs=3)
    steps, calls = None, {"n": 0}
    real = Loop.train_step

    def preempted(self, batch):  # the job is killed during epoch 2
        calls["n"] += 1
        if calls["n"] > steps:
            raise KeyboardInterrupt
        return real(self, batch)

    from aqi.store import read_station
    from aqi.windows import build_windows

    w = build_windows(read_station(synth_store, "Synth"), cfg.window, "Asia/Shanghai")
    steps = -(-len(w.part("train")) // cfg.train.batch_size)
    monkeypatch.setattr(Loop, "train_step", preempted)
    with pytest.raises(KeyboardInterrupt):
        train_station(synth_store, "Synth", cfg, quiet=True, echo=lambda *a: None)
    monkeypatch.setattr(Loop, "train_step", real)
    said = []
    meta = train_station(synth_store, "Synth", cfg, quiet=True, resume=True, echo=said.append)
    assert any("resumed from" in s and "(epoch 1)" in s for s in said)
    assert meta["epochs_run"] == [2]  # epochs 2 and 3 only
