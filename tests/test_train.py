"""The custom loop: parity with model.fit, strategy parity, learning, NaN guard, save/load."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import TZ, F, H, array_config, problem, tiny_config, two_models

from aqi import trained
from aqi.config import AqiError, median_index
from aqi.datadir import model_dir
from aqi.levels import STANDARDS
from aqi.loop import Best, Loop, NonFiniteLoss, dataset, fit, make_optimizer
from aqi.losses import LevelLoss, keras, tf
from aqi.model import build_model
from aqi.train import train_station
from aqi.windows import Scaler, Split


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_custom_loop_matches_model_fit(optimizer):
    """Same batches (no shuffle, a last partial batch of 6), same initial weights and optimizer:
    the same per-step losses and final weights."""
    cfg = array_config(optimizer=optimizer)
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


def test_a_seeded_best_keeps_the_start_unless_an_epoch_beats_it():
    """Fine-tuning seeds early stopping with the start's validation loss: epochs that do not beat
    it leave the start's weights (best epoch -1); a NaN validation loss never counts as better."""
    x, y = problem()
    cfg = array_config(epochs=2, lr=0.05, patience=5, restore_best=True)
    model, _ = two_models(cfg)
    start = model.get_weights()
    loop = Loop(model, make_optimizer(cfg.train, 5), LevelLoss(), tf.distribute.get_strategy())
    best = Best(model)
    best.loss.assign(-1.0)  # no loss is below it
    ds = dataset(x, y, 16, False, 0)
    hist = fit(loop, ds, ds, cfg.train, len(x), best=best)
    assert hist.best_epoch == -1 and len(hist.val_loss) == 2
    for got, want in zip(model.get_weights(), start, strict=True):
        np.testing.assert_array_equal(got, want)
    fresh = Best(model)
    fresh.update(model, float("nan"), 0)
    assert int(fresh.epoch.numpy()) == -1 and int(fresh.wait.numpy()) == 1


@pytest.mark.parametrize("m", [0.0, 0.7])
def test_ema_ends_each_epoch_on_the_moving_average_of_the_steps_weights(m):
    """With `ema` m the epoch's weights are avg_k = m·avg_(k-1) + (1 - m)·w_k over the weights w_k
    after each step (avg_1 = w_1), not the last step's; without it, the last step's."""
    x, y = problem()
    cfg = array_config(epochs=1, ema=m)
    model, _ = two_models(cfg)
    loop = Loop(model, make_optimizer(cfg.train, 5), LevelLoss(), tf.distribute.get_strategy())
    seen = []

    class Record:  # a progress bar that keeps the weights after every step
        step = staticmethod(lambda loss: seen.append(model.get_weights()))
        epoch = staticmethod(lambda e, h: None)

    ds = dataset(x, y, 16, False, 0)
    fit(loop, ds, ds, cfg.train, len(x), bar=Record())
    avg = seen[0]
    for w in seen[1:]:
        avg = [m * a + (1 - m) * b for a, b in zip(avg, w, strict=True)]
    assert len(seen) == 5
    for got, want, last in zip(model.get_weights(), avg, seen[-1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        if m and got.ndim == 2:
            assert np.abs(got - last).max() > 1e-4


STRATEGY_PARITY = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, "tests")
    from conftest import problem, array_config, two_models, F
    from aqi.devices import select_strategy
    from aqi.losses import LevelLoss, tf
    from aqi.model import build_model
    from aqi.loop import Loop, dataset, fit, make_optimizer
    n = int(sys.argv[1])
    mirrored, desc = select_strategy("cpus:2")   # logical devices before TF initialises
    cfg = array_config(epochs=3)
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
    d = trained.load(synth_store, "Synth").path
    before = {f: (d / f).read_bytes() for f in ("model.keras", "meta.json")}
    bad = tiny_config(epochs=2, optimizer="sgd", lr=1e30, clipnorm=None, schedule="constant")
    with pytest.raises(NonFiniteLoss, match="loss became (nan|inf)"):
        train_station(synth_store, "Synth", bad, quiet=True, echo=lambda *a: None)
    assert {f: (d / f).read_bytes() for f in before} == before
    trained.load(synth_store, "Synth")  # the previous model still loads


def test_nan_in_a_later_epoch_keeps_the_last_good_checkpoint(synth_store, monkeypatch):
    real, calls = Loop.train_step, {"n": 0}

    def diverging(self, batch):  # finite through epoch 1, NaN at the first step of epoch 2
        calls["n"] += 1
        out = real(self, batch)
        return out * np.nan if calls["n"] > 30 else out

    monkeypatch.setattr(Loop, "train_step", diverging)
    with pytest.raises(NonFiniteLoss, match="epoch 2"):
        train_station(synth_store, "Synth", tiny_config(epochs=3), quiet=True, echo=lambda *a: None)
    ckpt_dir = model_dir(synth_store, "Synth") / "ckpt" / "member-0"
    assert tf.train.latest_checkpoint(str(ckpt_dir)).endswith("ckpt-1")  # epoch 1, good


def record(cfg, model, std=None) -> trained.TrainedModel:
    """A TrainedModel of a tiny network, with every field set to something checkable."""
    dates = ("2016-03-20 23:00", "2016-04-09 23:00", "2016-04-29 23:00")
    split = Split(*(pd.Timestamp(d, tz=TZ) for d in dates))
    scaler = Scaler(np.arange(F, dtype=np.float32), np.full(F, 2.0, np.float32))
    std = std or STANDARDS["china-hj633-2012"]
    return trained.TrainedModel("S", model, cfg, scaler, split, TZ, std, {"features": list("abcde")})


def test_trained_model_round_trips_every_field_and_predicts_identically(tmp_path):
    cfg = array_config().replace(model={"head": "quantile"})
    model = build_model(cfg, F, (40.0, 30.0))
    x, _ = problem()
    saved = record(cfg, model).save(tmp_path)
    back = trained.load(tmp_path, "S")
    assert back.config == cfg and back.split == saved.split and back.timezone == TZ
    assert back.standard == STANDARDS["china-hj633-2012"] and back.info == saved.info
    np.testing.assert_array_equal(back.scaler.mean, saved.scaler.mean)
    assert (
        back.sha256 == saved.sha256
        and back.lite_sha256 == saved.lite_sha256
        and back.path == saved.path
        and back.path.parent.parent == model_dir(tmp_path, "S")
    )
    a, b = back.predict(x, None), saved.predict(x, None)  # loaded: its LiteRT file; in memory: Keras
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(a.point, a.quantiles[..., median_index(cfg.model.quantiles)])
    keras_back = trained.predict(back.keras_model(), x)
    np.testing.assert_array_equal(keras_back, trained.predict(saved.model, x))


def test_a_custom_standard_travels_with_the_model(tmp_path):
    custom = dataclasses.replace(
        STANDARDS["us-epa-2024"], key="my-city", edges=(10.0, 20.0, 30.0, 40.0, 50.0)
    )
    cfg = array_config()
    record(cfg, build_model(cfg, F, (40.0, 30.0)), custom).save(tmp_path)
    assert trained.load(tmp_path, "S").standard == custom  # no file needed at load time


def test_torn_artifacts_are_detected(tmp_path):
    cfg = array_config()
    record(cfg, build_model(cfg, F, (40.0, 30.0))).save(tmp_path)
    (trained.load(tmp_path, "S").path / "model.keras").write_bytes(b"garbage")
    with pytest.raises(AqiError, match="does not match meta.json"):
        trained.load(tmp_path, "S")


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_architectures_output_nonnegative_horizons(arch):
    cfg = array_config().replace(model={"arch": arch})
    model = build_model(cfg, F, (40.0, 30.0))
    out = trained.predict(model, problem()[0] * 50)
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
    changed = cfg.replace(train={"lr": 2e-3}, window={"val_end": "2016-04-05 23:00"})
    with pytest.raises(AqiError, match=r"--resume: .* differs .*train.lr: 0.001 → 0.002"):
        train_station(synth_store, "Synth", changed, quiet=True, resume=True, echo=print)
    said = []  # the refusal kept the checkpoints: the same options still resume them
    meta = train_station(synth_store, "Synth", cfg, quiet=True, resume=True, echo=said.append)
    assert any("resumed from" in s and "(epoch 1)" in s for s in said)
    assert meta["epochs_run"] == [2]  # epochs 2 and 3 only
    whole = train_station(synth_store, "Synth", cfg, quiet=True, echo=lambda *a: None)
    assert whole["epochs_run"] == [3]  # uninterrupted: and it ends with the very same model
    assert meta["validation"] == whole["validation"] and meta["best_epoch"] == whole["best_epoch"]


def test_tau_is_annealed_from_wide_to_the_configured_tau(synth_store, monkeypatch):
    seen, real = [], LevelLoss.anneal
    monkeypatch.setattr(LevelLoss, "anneal", lambda self, f: (seen.append(f), real(self, f)))
    cfg = tiny_config(epochs=3, patience=99).replace(loss={"tau_anneal": 8.0})
    train_station(synth_store, "Synth", cfg, quiet=True, echo=lambda *a: None)
    assert seen == pytest.approx([8.0, 8**0.5, 1.0, 1.0, 1.0])  # epochs 1-3, after the last, reset


def test_a_second_training_of_one_model_fails_at_once_and_a_killed_ones_lock_is_taken_over(
    synth_store,
):
    from aqi.datadir import exclusive
    from aqi.train import TRAIN_LOCK

    folder = model_dir(synth_store, "Synth")
    with exclusive(folder, TRAIN_LOCK, "held"), pytest.raises(AqiError, match="another `aqi train`"):
        train_station(synth_store, "Synth", tiny_config(epochs=1), quiet=True, echo=lambda *a: None)
    killed = textwrap.dedent(f"""
        import os, signal
        from filelock import FileLock
        FileLock({str(folder / TRAIN_LOCK)!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    assert subprocess.run([sys.executable, "-c", killed]).returncode == -9
    assert (folder / TRAIN_LOCK).exists()  # the stale file is still there…
    with exclusive(folder, TRAIN_LOCK, "held"):  # …and is taken over at once
        pass


def test_a_crash_at_any_write_of_a_save_leaves_the_previous_model_whole(tmp_path, monkeypatch):
    import aqi.trained as t

    cfg = array_config()
    first = record(cfg, build_model(cfg, F, (40.0, 30.0))).save(tmp_path)
    real = t.atomic_write_bytes
    for target in ("meta.json", "CURRENT"):  # fail the version's meta, then the switch itself

        def failing(path, data, target=target):
            if path.name == target:
                raise OSError(28, "No space left on device")
            real(path, data)

        monkeypatch.setattr(t, "atomic_write_bytes", failing)
        with pytest.raises(OSError):
            record(cfg, build_model(cfg, F, (40.0, 30.0))).save(tmp_path)
        monkeypatch.setattr(t, "atomic_write_bytes", real)
        back = t.load(tmp_path, "S")
        assert back.sha256 == first.sha256 and back.path == first.path
        assert sorted(p.name for p in (tmp_path / "models" / "S" / "versions").iterdir()) == [
            first.path.name
        ]
    second = record(cfg, build_model(cfg, F, (40.0, 30.0))).save(tmp_path)
    third = record(cfg, build_model(cfg, F, (40.0, 30.0))).save(tmp_path)
    kept = sorted(p.name for p in (tmp_path / "models" / "S" / "versions").iterdir())
    assert kept == sorted([second.path.name, third.path.name])  # the live one and the one before
