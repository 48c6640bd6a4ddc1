"""The network model through the CLI: `aqi train --station all` trains one model over the store's
stations; forecast and evaluate use it for stations without their own; a station it never saw gets
a cold-start forecast; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import NETWORK_TINY, learnable_frame, tree_digest, write_csv
from typer.testing import CliRunner

from aqi.cli import app
from aqi.trained import live_folder, load_from

runner = CliRunner()
TINY = NETWORK_TINY


def invoke(data, *args):
    return runner.invoke(app, ["--data-dir", str(data), *args])


def test_the_network_model_is_saved_once_with_its_stations(network_store):
    net = network_store / "models" / "_network"
    meta = json.loads((net / "versions" / (net / "CURRENT").read_text() / "meta.json").read_text())
    assert meta["data"]["stations"] == ["A", "B", "C"] and meta["kind"] == "network"
    assert meta["data"]["neighbours"]["A"][0] == "B"  # the most correlated on the train split
    assert meta["data"]["neighbours_by"] == "correlation"  # the store has no coordinates
    assert meta["config"]["network"]["stations"] == 3
    assert meta["config"]["loss"]["term_standard"] == "us-epa-2024"  # `network_defaults`
    assert not [p for p in (network_store / "models").iterdir() if p.name in "ABC"]
    assert not list(net.glob(".stream-*"))  # the streamed inputs are removed


def test_forecast_takes_the_network_model_and_says_so(network_store):
    r = invoke(network_store, "forecast", "--station", "B", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)[0]
    assert out["model"]["kind"] == "network" and len(out["model"]["sha256"]) == 64
    assert "_network" in out["model"]["path"] and len(out["forecasts"]) == 6


def test_a_station_the_model_never_saw_gets_a_cold_start_forecast(network_store):
    r = invoke(network_store, "forecast", "--station", "D", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["model"]["kind"] == "network"


def test_a_station_installed_after_the_split_is_bound_on_its_first_days(network_store, tmp_path):
    """E's data start 2016-04-12, after the model's validation end (04-09): its neighbours are
    chosen on its first 30 days; with under a week of data it is refused in one line."""
    from aqi.ingest import ingest

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    e = learnable_frame("E", seed=4)
    e = e[(e["year"] * 10000 + e["month"] * 100 + e["day"]) >= 20160412]
    ingest([write_csv(e, tmp_path / "raw" / "E.csv")], d)
    r = invoke(d, "forecast", "--station", "E", "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["model"]["kind"] == "network"
    ingest([write_csv(e.iloc[-100:].assign(station="F"), tmp_path / "raw" / "F.csv")], d)
    r = invoke(d, "forecast", "--station", "F")
    assert r.exit_code == 2 and "too little to start" in r.output and r.output.count("\n") == 1


def test_network_models_are_loaded_once_per_folder(network_store, tmp_path, monkeypatch):
    """`evaluate --model net=DIR` binds DIR's network model to each station it scores: DIR's model
    and the data folder's own are each loaded once, and do not evict each other."""
    import aqi.resolve as resolve
    from aqi.evaluate import other_forecast, other_model
    from aqi.store import read_station

    other = tmp_path / "other"
    shutil.copytree(network_store / "models" / "_network", other / "_network")
    loads, real = [], resolve.load_from
    monkeypatch.setattr(resolve, "load_from", lambda d, st: loads.append(d) or real(d, st))
    monkeypatch.setattr(resolve, "_NET", {})
    for st in ("A", "B", "C"):
        df = read_station(network_store, st)
        tm = resolve.load(network_store, st)
        test = tm.windows(df).part("test")
        rival = other_model("net", other, st, network_store, tm)
        assert other_forecast("net", rival, st, df, test).shape == test.y.shape
    assert loads == [network_store / "models" / "_network", other / "_network"]


def test_evaluate_scores_the_network_model(network_store):
    r = invoke(network_store, "evaluate", "--station", "C", "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["stations"]
    assert set(rows) == {"C"}


def test_own_model_wins_over_the_network_model(network_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    assert invoke(d, "train", "--station", "A", "-q", *TINY).exit_code == 0
    out = json.loads(invoke(d, "forecast", "--station", "A", "--format", "json").output)[0]
    assert out["model"]["kind"] == "station"
    r = invoke(
        d,
        "evaluate",
        "--station",
        "A",
        "--model",
        f"net={d / 'models' / '_network'}",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    methods = json.loads((d / "reports/evaluate/A/metrics.json").read_text())["methods"]
    assert {"model", "net", "gbm"} <= set(methods)  # its own model, the network model beside it
    assert methods["model"]["mae"] != methods["net"]["mae"]


def test_with_coordinates_in_the_store_neighbours_are_the_nearest(network_store, tmp_path):
    """Coordinates put A nearest C, not B (which the train split correlates with A); a station
    the model never saw (D) gets its nearest covered stations."""
    from aqi.resolve import bind, load_network

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    sites = tmp_path / "sites.csv"  # degrees on the equator
    sites.write_text("station,latitude,longitude\nA,0,0\nB,0,10\nC,0,1\nD,0,0.4\n")
    assert invoke(d, "stations", "--locations", str(sites)).exit_code == 0
    args = ["train", "--station", "A,B,C", "-q", "--neighbours-by", "coordinates", *TINY]
    assert invoke(d, *args).exit_code == 0
    info = load_network(d).info["data"]
    assert info["neighbours_by"] == "coordinates"
    assert info["neighbours"] == {"A": ["C", "B"], "B": ["C", "A"], "C": ["A", "B"]}
    assert bind(load_network(d), d, "D").info["neighbours"] == ["A", "C", "B"]
    r = invoke(d, "forecast", "--station", "D", "--format", "json")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--station", "A,Nowhere", *TINY], "station 'Nowhere': not in"),
        (["train", "--station", "A", "--station", "A,../x", *TINY], "invalid station name"),
        (["train", "--station", "A,B", "--optimizer", "lbfgs", *TINY], "one-station models only"),
        (["train", "--station", "A,B", *TINY], "also forecasts 1 station(s) not listed (C); list"),
        (["train", "--station", "all", "--replace", *TINY], "--replace: goes with a list"),
        (["forecast", "--station", "Nowhere"], "unknown station 'Nowhere'"),
    ],
)
def test_bad_network_input(network_store, args, message):
    before = tree_digest(network_store)
    r = invoke(network_store, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and r.output.count("\n") == 1, r.output
    assert tree_digest(network_store) == before


def test_replace_lets_a_shorter_list_replace_the_network_model(network_store, tmp_path):
    from aqi.resolve import covered, load_network

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    r = invoke(d, "train", "--station", "A,B", "--replace", "-q", *NETWORK_TINY)
    assert r.exit_code == 0, r.output
    assert covered(load_network(d)) == ["A", "B"]


def test_the_coverage_check_holds_under_the_train_lock(network_store, tmp_path, monkeypatch):
    """A `--station all` that saves between the first check and the lock still stops `A,B`."""
    import aqi.train_network as tn
    from aqi.config import AqiError
    from aqi.resolve import covered, load_network

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    live, aside = d / "models" / "_network", tmp_path / "aside"
    live.rename(aside)  # the first check sees no network model
    real = tn.check_size

    def saved_meanwhile(*a, **k):
        aside.rename(live)
        return real(*a, **k)

    real_check, held = tn._keeps_coverage, []

    def check(data_dir, names):  # the second check must run with the train lock taken
        folder = tn.network_dir(data_dir)
        try:
            if folder.exists():  # (the first check runs while the model is aside)
                with tn.exclusive(folder, tn.TRAIN_LOCK, "taken"):
                    pass
            held.append(False)
        except AqiError:
            held.append(True)
        return real_check(data_dir, names)

    monkeypatch.setattr(tn, "check_size", saved_meanwhile)
    monkeypatch.setattr(tn, "_keeps_coverage", check)
    r = invoke(d, "train", "--station", "A,B", "-q", *NETWORK_TINY)
    assert r.exit_code == 2 and "also forecasts 1 station(s) not listed (C)" in r.output, r.output
    assert held == [False, True]
    assert covered(load_network(d)) == ["A", "B", "C"]


def test_a_store_without_a_station_the_model_needs(network_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    shutil.rmtree(d / "store" / "station=C")
    before = tree_digest(d)
    r = invoke(d, "forecast", "--station", "A")
    assert r.exit_code == 2 and "needs station(s) C" in r.output and r.output.count("\n") == 1
    assert tree_digest(d) == before


def test_forecast_all_is_one_batch_equal_to_each_station_alone(network_store):
    r = invoke(network_store, "forecast", "--station", "all", "--format", "json")
    assert r.exit_code == 0, r.output
    batch = {f["station"]: f for f in json.loads(r.output)}
    assert set(batch) == {"A", "B", "C"}
    for st in ("A", "C"):
        alone = json.loads(invoke(network_store, "forecast", "--station", st, "--format", "json").output)
        assert alone[0] == batch[st]
    at = ["--at", "2016-04-15T08:00", "--format", "json"]
    batch = {
        f["station"]: f
        for f in json.loads(invoke(network_store, "forecast", "--station", "all", *at).output)
    }
    alone = json.loads(invoke(network_store, "forecast", "--station", "B", *at).output)[0]
    assert alone == batch["B"] and alone["issued_at"].startswith("2016-04-15T08:00")


def test_the_batch_publishes_the_level_of_each_stations_own_origin(network_store, monkeypatch):
    """With a margin of 1 every published level is the level at the origin: the batch must read
    it from each station's own window, as a forecast of that station alone does."""
    from aqi.prediction import publish
    from aqi.trained import TrainedModel

    def always_stay(self, pred, std, miss_cost=None):
        return publish(pred, std, 1.0, None, [1.0] * pred.point.shape[1])

    monkeypatch.setattr(TrainedModel, "published", always_stay)
    batch = json.loads(invoke(network_store, "forecast", "--station", "all", "--format", "json").output)
    for f in batch:
        alone = invoke(network_store, "forecast", "--station", f["station"], "--format", "json")
        assert [r["level"] for r in json.loads(alone.output)[0]["forecasts"]] == [
            r["level"] for r in f["forecasts"]
        ]
        assert len({r["level"] for r in f["forecasts"]}) == 1  # the one level of now, every hour


def test_finetune_starts_from_the_network_model(network_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    fixed = invoke(d, "train", "--station", "B", "--finetune", "-q", *TINY)
    assert fixed.exit_code == 2 and "not settable when fine-tuning" in fixed.output  # --hidden, …
    for opt in (("--optimizer", "sgd"), ("--gap-share", "0.2"), ("--finetune-lbfgs", "3")):
        r = invoke(d, "train", "--station", "B", "--finetune", "-q", *opt)
        assert r.exit_code == 2 and f"{opt[0]}: not settable" in r.output, r.output
    quick = ("--epochs", "1", "--batch-size", "64", "--device", "cpu")
    r = invoke(d, "train", "--station", "B", "--finetune", "-q", "--miss-cost", "3", "--no-stay", *quick)
    assert r.exit_code == 0, r.output
    out = json.loads(invoke(d, "forecast", "--station", "B", "--format", "json").output)[0]
    assert out["model"]["kind"] == "finetuned" and "models/B/" in out["model"]["path"]
    tuned = load_from(d / "models" / "B", "B")
    assert tuned.config.decision.miss_cost == 3.0 and tuned.config.train.device == "cpu"
    assert not tuned.config.decision.stay and "stay_margin" not in tuned.info
    assert "stay_margin" in load_from(d / "models" / "_network", "_network").info  # on by default
    from aqi.evaluate import other_forecast, other_model  # `--model ft=DIR`: a fine-tuned model
    from aqi.resolve import load
    from aqi.store import read_station

    df, tm = read_station(d, "B"), load(d, "B")
    test = tm.windows(df).part("test")
    rival = other_model("ft", d / "models", "B", d, tm)
    assert other_forecast("ft", rival, "B", df, test).shape == test.y.shape
    r = invoke(d, "train", "--station", "D", "--finetune", "-q", *quick)
    assert r.exit_code == 2 and "was not trained on D" in r.output
    again = invoke(d, "train", "--station", "A,B,C", *NETWORK_TINY)  # B's model is now of the old one
    assert again.exit_code == 0 and "previous network model stay live for B;" in again.output
    still = invoke(d, "train", "--station", "C", "--finetune", "--lr", "1e-12", *quick)  # can't beat it
    assert still.exit_code == 0 and "C (nothing saved: no epoch beat the network model)" in still.output
    assert live_folder(d / "models" / "C") is None  # the network model forecasts C as before


def test_one_station_is_finetuned_by_default_when_the_network_model_covers_it(network_store, tmp_path):
    """`aqi train --station X`: fine-tuned from the covering network model unless --no-finetune, a
    model option (the network model fixes those) or a station it does not cover says otherwise."""
    from aqi.finetune import finetunes_by_default

    assert finetunes_by_default(network_store, "B", {"epochs": 1, "device": "cpu"})
    said = []
    assert not finetunes_by_default(network_store, "B", {"epochs": 1, "hidden": 8}, said.append)
    assert said == ["B: trained alone, not fine-tuned from the network model: --hidden"]
    assert not finetunes_by_default(network_store, "B", {"optimizer": "sgd"})  # not honoured there
    assert finetunes_by_default(network_store, "B", {"miss_cost": 3.0, "quiet": True})
    assert not finetunes_by_default(network_store, "D", {})  # never trained on D
    assert not finetunes_by_default(tmp_path, "B", {})  # no network model
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    quick = ("--epochs", "1", "--batch-size", "64", "--device", "cpu")
    r = invoke(d, "train", "--station", "B", "-q", *quick)
    assert r.exit_code == 0 and "B (fine-tuned from the network model)" in r.output, r.output
    out = json.loads(invoke(d, "forecast", "--station", "B", "--format", "json").output)[0]
    assert out["model"]["kind"] == "finetuned"
    alone = invoke(d, "train", "--station", "B", "--no-finetune", "-q", *quick)  # the same options
    assert alone.exit_code == 2 and "too little training data" in alone.output  # the default split


def test_forecast_all_survives_a_station_in_a_long_outage(network_store, tmp_path):
    """A covered station with no rows in the hours a forecast reads: the others are forecast, it
    gets one line, exit 2, no traceback."""
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    at = ["--at", "2016-04-15T08:00", "--format", "json"]
    from aqi.store import read_station, write_partition

    a = read_station(d, "A")
    write_partition(d, "A", a[a["time"] < "2016-03-01"])  # A: nothing for the last 6 weeks
    r = invoke(d, "forecast", "--station", "all", *at)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "error: A:" in r.output and '"station": "B"' in r.output


def test_the_network_is_read_once_for_many_stations_and_again_when_it_changes(
    network_store, tmp_path, monkeypatch
):
    from aqi import resolve
    from aqi.network import NetworkPm25
    from aqi.store import read_station, write_partition

    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    reads, real = [], NetworkPm25.read
    monkeypatch.setattr(NetworkPm25, "read", lambda *a, **k: reads.append(1) or real(*a, **k))
    network = resolve.load_network(d)
    for st in ("A", "B", "C"):
        resolve.bind(network, d, st)
    assert len(reads) == 1
    write_partition(d, "C", read_station(d, "C").iloc[:-24])  # C changes: read again
    resolve.bind(network, d, "A")
    assert len(reads) == 2


def test_all_with_fewer_than_two_trainable_stations_is_one_line(tmp_path):
    """`--station all` leaves out the stations without a train window; fewer than 2 left is exit 2."""
    from aqi.ingest import ingest

    frames = [learnable_frame("A", seed=0), learnable_frame("B", seed=1)]
    ingest([write_csv(f, tmp_path / "raw" / f"{f['station'][0]}.csv") for f in frames], tmp_path / "d")
    r = invoke(
        tmp_path / "d", "train", "--station", "all", "-q", *NETWORK_TINY, "--train-end", "2016-01-01"
    )
    assert r.exit_code == 2 and "0 station(s) can train" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "d" / "models").exists()


def test_an_empty_network_pointer_is_not_read_as_no_network_model(network_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    (d / "models" / "_network" / "CURRENT").write_text("")
    r = invoke(d, "train", "--station", "B", "--epochs", "1")  # would train B alone beside it
    assert r.exit_code == 2 and "names no saved version" in r.output, r.output
    assert "`aqi train --station all`" in r.output and not (d / "models" / "B").exists()


def test_a_torn_network_model_does_not_stop_stations_with_their_own_models(template, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(template / "data", d)
    (d / "models" / "_network").mkdir()
    (d / "models" / "_network" / "CURRENT").write_text("")
    r = invoke(d, "forecast", "--station", "all", "--format", "json")
    assert r.exit_code == 2 and "error: network model:" in r.output and "names no saved" in r.output
    assert {"Other", "Synth"} <= {x["station"] for x in json.loads(r.stdout.split("error:")[0])}
    r = invoke(d, "evaluate", "--station", "all", "-q")  # scores them, then names the network
    assert r.exit_code == 2 and "network model:" in r.output and "the other 2 were scored" in r.output
    assert (d / "reports" / "evaluate" / "Synth" / "metrics.json").exists()


def test_a_torn_network_model_says_to_retrain_the_network(network_store, tmp_path):
    d = tmp_path / "data"
    shutil.copytree(network_store, d)
    (live_folder(d / "models" / "_network") / "meta.json").write_text("{")
    r = invoke(d, "forecast", "--station", "B")
    assert r.exit_code == 2 and "corrupt" in r.output and "`aqi train --station all`" in r.output
