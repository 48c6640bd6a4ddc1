"""The catalogue of bad inputs and faults: every case ends in one line naming the file or option,
exit code 2, no traceback, and the data folder byte-for-byte as it was.

Each case gets a copy of one data folder (`template` in conftest: stations Synth and Other, each
with a tiny trained model), may damage it (the fault), and runs one `aqi` command through the CLI.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from conftest import NETWORK_TINY, learnable_frame, tree_digest, uci_frame, write_csv
from typer.testing import CliRunner

from aqi.cli import app
from aqi.trained import meta_digest

runner = CliRunner()
Case = Callable[[Path], tuple[list[str], str]]  # (root) → (aqi arguments, message fragment)
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def data(root: Path) -> Path:
    return root / "data"


def live(root: Path) -> Path:
    """The live version folder of Synth's model."""
    d = data(root) / "models" / "Synth"
    return d / "versions" / (d / "CURRENT").read_text().strip()


def hold(path: Path) -> None:
    """Hold the OS lock `path` as another process would (flock: one per open file)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    HELD.append(fd)


HELD: list[int] = []


def small_csv(root: Path, name: str, **changes) -> Path:
    df = uci_frame("Synth", hours=12)
    for col, (row, value) in changes.items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return write_csv(df, root / "in" / name)


def write(root: Path, name: str, data_: bytes | str) -> Path:
    p = root / "in" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data_ if isinstance(data_, bytes) else data_.encode())
    return p


def zip_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def standard_toml(root: Path, c_lo_2: str = "35.5") -> Path:
    return write(
        root,
        "std.toml",
        "name = 'x'\n"
        "[[level]]\nname = 'a'\nc_lo = 0\nc_hi = 12\n"
        "[[level]]\nname = 'b'\nc_lo = 12.1\nc_hi = 35.4\n"
        f"[[level]]\nname = 'c'\nc_lo = {c_lo_2}\nc_hi = 500\n",
    )


def ingest(*args: str) -> list[str]:
    return ["ingest", *args]


def train(*args: str) -> list[str]:
    return ["train", "--station", "Synth", *NETWORK_TINY, *args]


# ---- ingest: files -------------------------------------------------------------------------------


@case
def missing_file(r):
    return ingest(str(r / "nope.csv")), "nope.csv: file not found"


@case
def empty_file(r):
    return ingest(str(write(r, "e.csv", ""))), "e.csv: file is empty"


@case
def header_only(r):
    return ingest(str(write(r, "h.csv", ",".join(uci_frame().columns) + "\n"))), "file is empty"


@case
def binary_file(r):
    return ingest(str(write(r, "b.csv", b"\x89PNG\r\n\x1a\n\x00" * 30))), "not a CSV file"


@case
def missing_column(r):
    p = write_csv(uci_frame(hours=12).drop(columns=["PM2.5"]), r / "in" / "m.csv")
    return ingest(str(p)), "m.csv: not in the UCI Beijing layout (missing PM2.5)"


@case
def hour_past_the_day(r):  # pandas would store it 4 days on, over a real hour
    return ingest(str(small_csv(r, "h.csv", hour=(3, 99)))), "h.csv: line 5: hour 99 is not in 0..23"


@case
def empty_station_field(r):  # read as missing: it was stored as a station of no name
    return ingest(str(small_csv(r, "s.csv", station=(2, "")))), "s.csv: line 4: invalid station name ''"


@case
def unparseable_number(r):
    return ingest(str(small_csv(r, "n.csv", PM10=(4, "12,5x")))), "line 6, column PM10"


@case
def negative_value(r):
    return ingest(str(small_csv(r, "neg.csv", **{"PM2.5": (2, -4)}))), "negative concentration"


@case
def value_above_physical_bound(r):
    return ingest(str(small_csv(r, "o3.csv", O3=(3, 99999)))), "outside physical bounds"


@case
def conflicting_duplicate_hours(r):
    df = uci_frame("Synth", hours=12)
    df = pd.concat([df, df.iloc[[7]].assign(**{"PM2.5": 999})])
    return ingest(str(write_csv(df, r / "in" / "d.csv"))), "two different values"


@case
def station_name_with_path(r):
    p = write_csv(uci_frame(hours=12).assign(station="../evil"), r / "in" / "s.csv")
    return ingest(str(p)), "invalid station name '../evil'"


@case
def station_option_with_path(r):
    return ingest(str(small_csv(r, "ok.csv")), "--station", "a/../../b"), "invalid station name"


@case
def zip_without_csv(r):
    return ingest(str(write(r, "z.zip", zip_of({"readme.txt": b"x"})))), "holds no CSV file"


@case
def folder_without_csv(r):
    (r / "in" / "empty").mkdir(parents=True)
    return ingest(str(r / "in" / "empty")), "folder holds no .csv, .zip, .gz, .dat file"


@case
def fifo_as_input(r):
    (r / "in").mkdir(exist_ok=True)
    os.mkfifo(r / "in" / "pipe.csv")
    return ingest(str(r / "in" / "pipe.csv")), "pipe.csv: not a regular file"


@case
def zip_bomb(r):
    bomb = zip_of({"bomb.csv": b"0" * (60 << 20)})  # 60 MiB of zeros in ~60 KB
    return ingest(str(write(r, "bomb.zip", bomb))), "bomb.zip!bomb.csv: inflates"


@case
def single_line_file(r):
    return ingest(str(write(r, "line.csv", "a," * 200_000))), "line.csv: a line of 400000 bytes"


@case
def zip_with_bad_crc(r):
    body = uci_frame(hours=12).to_csv(index=False).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.csv", body)
    raw = bytearray(buf.getvalue())
    raw[raw.index(b"No,year") + 40] ^= 0xFF  # one byte of the stored member: its CRC fails
    return ingest(str(write(r, "crc.zip", bytes(raw)))), "crc.zip: corrupt zip archive"


@case
def truncated_zip(r):
    raw = zip_of({"a.csv": uci_frame(hours=200).to_csv(index=False).encode()})
    return ingest(str(write(r, "cut.zip", raw[: len(raw) // 2]))), "cut.zip: not a CSV file"


@case
def zip_nested_too_deep(r):
    inner = zip_of({"b.zip": zip_of({"c.zip": zip_of({"a.csv": b"x"})})})
    return ingest(str(write(r, "deep.zip", inner))), "nested deeper than 2"


@case
def latin1_station_file(r):
    p = write(r, "l.csv", uci_frame(hours=3).to_csv(index=False).replace("Alpha", "Zürich"))
    p.write_bytes(p.read_bytes().decode().encode("latin-1"))
    return ingest(str(p)), "l.csv"


@case
def other_station_labelled_as_this_one(r):
    df = learnable_frame("Other", seed=9).assign(station="Synth")  # a fresh series, 2,880 hours
    return ingest(str(write_csv(df, r / "in" / "wrong.csv"))), "would change 2880 of station Synth"


@case
def bad_invalid_policy(r):
    return ingest(str(small_csv(r, "ok.csv")), "--invalid", "drop"), "--invalid 'drop'"


@case
def ingest_while_another_ingest_runs(r):
    hold(data(r) / "store" / ".ingest.lock")
    return ingest(str(small_csv(r, "ok.csv"))), "another ingest is writing to this store"


@case
def data_dir_is_a_file(r):
    (r / "afile").write_text("x")
    return ["--data-dir", str(r / "afile"), *ingest(str(small_csv(r, "ok.csv")))], "not writable"


@case
def manifest_is_a_folder(r):
    m = data(r) / "store" / "_manifest.json"
    m.unlink()
    m.mkdir()
    return ingest(str(small_csv(r, "ok.csv"))), "_manifest.json"


# ---- ingest: mapping files -----------------------------------------------------------------------


@case
def mapping_not_found(r):
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(r / "no.toml")), "not found"


@case
def mapping_malformed(r):
    m = write(r, "m.toml", "[time\n")
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "malformed TOML mapping"


@case
def mapping_wrong_shape(r):
    m = write(r, "m.toml", '[time]\ntimezone = "UTC"\nparts = "year"\n')
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "[time] parts must be a table"


@case
def mapping_is_a_folder(r):
    (r / "in" / "m.toml").mkdir(parents=True)
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(r / "in" / "m.toml")), "not a regular"


@case
def mapping_unknown_timezone(r):
    m = write(r, "m.toml", '[time]\ncolumn = "t"\ntimezone = "Mars/Olympus"\n')
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "unknown timezone"


@case
def mapping_unknown_column(r):
    m = write(r, "m.toml", '[time]\ncolumn = "t"\ntimezone = "UTC"\n[columns]\npm1 = "x"\n')
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "unknown canonical column"


@case
def mapping_missing_not_a_list(r):
    m = write(
        r, "m.toml", 'missing = "NA"\n[time]\ncolumn = "t"\ntimezone = "UTC"\n[station]\nname = "S"\n'
    )
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "missing must be a list"


@case
def mapping_misspelt_table(r):
    m = write(r, "m.toml", '[time]\ncolumn = "t"\ntimezone = "UTC"\n[unit]\npm25 = "mg/m3"\n')
    return ingest(
        str(small_csv(r, "ok.csv")), "--mapping", str(m)
    ), "unknown key(s) ['unit'] at top level"


@case
def mapping_zero_unit_factor(r):
    text = '[time]\ncolumn = "t"\ntimezone = "UTC"\n[station]\nname = "S"\n[units]\npm25 = 0\n'
    m = write(r, "m.toml", text)
    return ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m)), "a factor must be finite and > 0"


@case
def mapping_station_name_and_option_disagree(r):
    m = write(r, "m.toml", '[time]\ncolumn = "t"\ntimezone = "UTC"\n[station]\nname = "S"\n')
    args = ingest(str(small_csv(r, "ok.csv")), "--mapping", str(m), "--station", "Other")
    return args, "[station] name = 'S' but --station 'Other'"


# ---- train ---------------------------------------------------------------------------------------


@case
def train_unknown_station(r):
    return ["train", "--station", "Nope", *NETWORK_TINY], "unknown station 'Nope'"


@case
def train_station_escaping_the_data_folder(r):
    return ["train", "--station", "X/../../../outside"], "invalid station name"


@case
def train_station_list_with_an_unknown(r):
    return ["train", "--station", "Synth,Nope", *NETWORK_TINY], "Nope"


@case
def train_hidden_huge(r):
    return train("--hidden", "2000000"), "--hidden 2000000: the model would have"


@case
def train_horizon_huge(r):
    return train("--horizon", "10000"), "--horizon 10000: longer than the 2880 hours"


@case
def train_lookback_zero(r):
    return train("--lookback", "0"), "--lookback 0: out of range"


@case
def train_epochs_zero(r):
    return train("--epochs", "0"), "--epochs 0: out of range"


@case
def train_lr_negative(r):
    return train("--lr", "-1"), "--lr -1.0: out of range"


@case
def train_dropout_one(r):
    return train("--dropout", "1"), "--dropout 1.0: out of range"


@case
def train_unknown_arch(r):
    return train("--arch", "transformer"), "--arch 'transformer'"


@case
def train_unknown_optimizer(r):
    return train("--optimizer", "lion"), "--optimizer 'lion'"


@case
def train_unknown_device(r):
    return train("--device", "tpu"), "--device"


@case
def train_bad_shard(r):
    return ["train", "--station", "all", "--shard", "3/2", *NETWORK_TINY], "--shard"


@case
def train_bad_quantiles(r):
    return train("--head", "quantile", "--quantiles", "0.1,x"), "--quantiles"


@case
def train_quantiles_without_median(r):
    return train("--head", "quantile", "--quantiles", "0.1,0.9"), "--quantiles"


@case
def train_unknown_standard(r):
    return train("--standard", "mars-2030"), "--standard 'mars-2030': unknown"


@case
def train_standard_file_missing(r):
    return train("--standard", str(r / "nope.toml")), "standard file not found"


@case
def train_standard_is_a_folder(r):
    (r / "dir.toml").mkdir()
    return train("--standard", str(r / "dir.toml")), "dir.toml: not a regular file"


@case
def train_standard_nan_breakpoint(r):
    return train("--standard", str(standard_toml(r, "nan"))), "must be finite"


@case
def train_standard_inf_breakpoint(r):
    return train("--standard", str(standard_toml(r, "inf"))), "must be finite"


@case
def train_standard_decreasing(r):
    return train("--standard", str(standard_toml(r, "5"))), "levels must increase"


@case
def train_standard_level_not_a_table(r):
    return train("--standard", str(write(r, "s.toml", "level = [1, 2]\n"))), "invalid standard"


@case
def train_while_another_training_runs(r):
    hold(data(r) / "models" / "Synth" / ".train.lock")
    return train(), "another `aqi train` is writing this model"


@case
def train_models_folder_is_a_file(r):
    shutil.rmtree(data(r) / "models")
    (data(r) / "models").write_text("x")
    return train(), "not writable"


@case
def train_bad_split_date(r):
    return train("--train-end", "someday"), "someday"


@case
def train_split_dates_out_of_order(r):
    return train("--train-end", "2016-04-20 23:00"), "train-end"


@case
def train_tensorboard_is_a_file(r):
    (r / "tb").write_text("x")
    return train("--tensorboard", str(r / "tb")), "--tensorboard"


@case
def train_finetune_without_a_network_model(r):
    return train("--finetune"), "network model"


@case
def train_finetune_per_station(r):
    return train("--finetune", "--per-station"), "--finetune starts from the network model"


@case
def train_network_with_gap_share(r):
    return ["train", "--station", "all", "--gap-share", "0.3", *NETWORK_TINY], "--gap-share"


@case
def train_unknown_neighbour_rule(r):
    return train("--neighbours-by", "nearest"), "--neighbours-by 'nearest': use one of"


@case
def train_network_by_coordinates_the_store_lacks(r):
    args = ["train", "--station", "all", "--neighbours-by", "coordinates", *NETWORK_TINY]
    return args, "some stations have no coordinates in the store; add them"


@case
def stations_locations_file_missing(r):
    return ["stations", "--locations", str(r / "nope.csv")], "nope.csv: not a readable CSV"


@case
def train_threads_zero(r):
    return train("--threads", "0"), "--threads"


# ---- forecast ------------------------------------------------------------------------------------


@case
def forecast_without_a_model(r):
    shutil.rmtree(data(r) / "models" / "Other")
    return ["forecast", "--station", "Other"], "no trained model for station 'Other'"


@case
def forecast_station_escaping(r):
    return ["forecast", "--station", "../../etc"], "invalid station name"


@case
def forecast_at_not_a_time(r):
    return ["forecast", "--station", "Synth", "--at", "soon"], "--at 'soon': not a time"


@case
def compact_without_a_store(r):
    return ["--data-dir", str(r / "nowhere"), "compact"], "no store in"


@case
def levels_value_infinite(r):
    return ["levels", "--value", "inf"], "--value inf: a concentration must be finite"


@case
def train_station_list_with_a_repeat(r):
    return ["train", "--station", "Synth,Other,Synth"], "an empty or repeated name"


@case
def forecast_station_list_with_a_trailing_comma(r):
    return ["forecast", "--station", "Synth,"], "an empty or repeated name"


@case
def forecast_output_over_the_store(r):
    out = data(r) / "store" / "_manifest.json"
    return ["forecast", "--station", "Synth", "--output", str(out)], "inside the data folder's store"


@case
def forecast_at_nat(r):
    return ["forecast", "--station", "Synth", "--at", "NaT"], "--at 'NaT': not a time"


@case
def train_seed_out_of_range(r):
    return train("--seed", "-1"), "--seed -1: out of range"


@case
def train_test_months_negative(r):
    return ["train", "--station", "Synth", "--test-months", "-1"], "--test-months -1: out of range"


@case
def train_test_months_with_val_end(r):
    return train("--test-months", "0", "--val-end", "2016-04-09"), "--test-months 0 with --val-end"


@case
def train_test_months_leaving_no_validation(r):  # the 4-month store: validation from before it
    args = ["train", "--station", "Synth", "--test-months", "3", "--train-end", "2016-03-20"]
    return args, "(validation ends --test-months 3 before test)"


@case
def train_tau_infinite(r):
    return train("--tau", "inf"), "--tau inf: out of range"


@case
def forecast_at_outside_the_data(r):
    return ["forecast", "--station", "Synth", "--at", "2030-01-01T00:00"], "--at"


@case
def forecast_bad_format(r):
    return ["forecast", "--station", "Synth", "--format", "xml"], "--format 'xml'"


@case
def forecast_miss_cost_under_another_standard(r):  # the level head's breakpoints are US EPA 2024's
    cmd = ["forecast", "--station", "Synth", "--standard", "india-naqi", "--miss-cost", "3"]
    return cmd, "--miss-cost: Synth's model gives no level probabilities under india-naqi"


@case
def forecast_negative_miss_cost(r):
    return ["forecast", "--station", "Synth", "--miss-cost", "-1"], "--miss-cost"


@case
def forecast_unknown_standard(r):
    return ["forecast", "--station", "Synth", "--standard", "nope"], "--standard 'nope'"


@case
def forecast_output_under_a_file(r):
    (r / "f").write_text("x")
    out = ["--format", "json", "--output", str(r / "f" / "o.json")]
    return ["forecast", "--station", "Synth", *out], "--output"


@case
def forecast_output_into_a_missing_folder(r):
    out = ["--format", "json", "--output", str(r / "no" / "such" / "o.json")]
    return ["forecast", "--station", "Synth", *out], "is not an existing folder; create it first"


@case
def forecast_table_into_a_file(r):
    out = ["--format", "table", "--output", str(r / "o.csv")]
    return ["forecast", "--station", "Synth", *out], "a table is for the terminal; add --format csv"


@case
def forecast_output_suffix_against_format(r):
    out = ["--format", "json", "--output", str(r / "o.csv")]
    return ["forecast", "--station", "Synth", *out], "a .csv name for --format json; make them agree"


@case
def forecast_output_inside_a_model_folder_that_is_missing(r):
    out = ["--format", "json", "--output", str(data(r) / "models" / "Synth" / "sub" / "o.json")]
    return ["forecast", "--station", "Synth", *out], "inside the data folder's store or models"


@case
def forecast_output_a_folder(r):
    (r / "out.json").mkdir()
    return ["forecast", "--station", "Synth", "--output", str(r / "out.json")], "a folder; give a file"


@case
def forecast_output_onto_a_pipe(r):  # the atomic rename would replace it (or /dev/full) with a file
    os.mkfifo(r / "p.json")
    return ["forecast", "--station", "Synth", "--output", str(r / "p.json")], "not a regular file"


@case
def forecast_meta_edited_by_hand(r):  # valid JSON, another time zone: read on, it misplaced hours
    meta = json.loads((live(r) / "meta.json").read_text())
    (live(r) / "meta.json").write_text(json.dumps(meta | {"timezone": "Europe/Paris"}))
    return ["forecast", "--station", "Synth"], "meta.json: edited after training"


@case
def forecast_meta_of_no_digest_with_a_bad_split(r):  # a release before the digest, then edited
    meta = json.loads((live(r) / "meta.json").read_text())
    del meta["meta_sha256"]
    (live(r) / "meta.json").write_text(json.dumps(meta | {"split": {}}))
    return ["forecast", "--station", "Synth"], "meta.json: invalid record (KeyError('train_end'))"


@case
def forecast_output_of_no_known_suffix(r):
    out = ["--output", str(r / "o.txt")]
    return ["forecast", "--station", "Synth", *out], "a table is for the terminal; add --format csv"


@case
def forecast_meta_garbage(r):
    (live(r) / "meta.json").write_text("{not json")
    return ["forecast", "--station", "Synth"], "meta.json: corrupt"


@case
def forecast_meta_empty_object(r):
    (live(r) / "meta.json").write_text("{}")
    return ["forecast", "--station", "Synth"], "meta.json: incomplete"


@case
def forecast_meta_a_list(r):
    (live(r) / "meta.json").write_text("[1, 2]")
    return ["forecast", "--station", "Synth"], "meta.json"


@case
def forecast_model_torn(r):
    (live(r) / "model.keras").write_bytes(b"PK\x03\x04 torn")
    return ["forecast", "--station", "Synth"], "does not match meta.json"


@case
def forecast_model_truncated_with_its_hash(r):
    _pre_litert(live(r))
    _rehash(live(r), lambda b: b[: len(b) // 2])
    return ["forecast", "--station", "Synth"], "model.keras: cannot be loaded"


@case
def forecast_model_bad_crc_with_its_hash(r):
    _pre_litert(live(r))  # a model saved before the LiteRT export predicts through model.keras
    _rehash(live(r), lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:])
    return ["forecast", "--station", "Synth"], "model.keras: cannot be loaded"


@case
def forecast_litert_truncated_with_its_hash(r):
    _rehash(live(r), lambda b: b[: len(b) // 2], "model.tflite")
    return ["forecast", "--station", "Synth"], "model.tflite: cannot be loaded"


def _rehash(folder: Path, damage, name: str = "model.keras") -> None:
    """Damage a model file and write its new hash to meta.json, as a consistent writer would."""
    import hashlib

    body = damage((folder / name).read_bytes())
    (folder / name).write_bytes(body)
    meta = json.loads((folder / "meta.json").read_text())
    meta[{"model.keras": "model_sha256", "model.tflite": "lite_sha256"}[name]] = hashlib.sha256(
        body
    ).hexdigest()
    meta["meta_sha256"] = meta_digest(meta)
    (folder / "meta.json").write_text(json.dumps(meta))


def _pre_litert(folder: Path) -> None:
    (folder / "model.tflite").unlink()
    meta = json.loads((folder / "meta.json").read_text())
    del meta["lite_sha256"], meta["meta_sha256"]  # neither existed then
    (folder / "meta.json").write_text(json.dumps(meta))


@case
def forecast_current_points_nowhere(r):
    (data(r) / "models" / "Synth" / "CURRENT").write_text("20990101T000000-deadbeef")
    return ["forecast", "--station", "Synth"], "CURRENT: names no saved version"


@case
def forecast_current_escaping(r):
    (data(r) / "models" / "Synth" / "CURRENT").write_text("../../../etc")
    return ["forecast", "--station", "Synth"], "CURRENT: names no saved version"


@case
def forecast_current_empty(r):
    (data(r) / "models" / "Synth" / "CURRENT").write_text("")  # a torn model, not "no model"
    return ["forecast", "--station", "Synth"], "CURRENT: names no saved version (torn)"


@case
def forecast_corrupt_partition(r):
    (data(r) / "store" / "station=Synth" / "data.parquet").write_bytes(b"PAR1 garbage PAR1")
    return ["forecast", "--station", "Synth"], "station=Synth/data.parquet: corrupt partition"


@case
def forecast_custom_standard_nan(r):
    return ["forecast", "--station", "Synth", "--standard", str(standard_toml(r, "nan"))], "finite"


# ---- evaluate, stations, levels ------------------------------------------------------------------


@case
def evaluate_without_a_model(r):
    shutil.rmtree(data(r) / "models" / "Other")
    return ["evaluate", "--station", "Other"], "no trained model for station 'Other'"


@case
def evaluate_bad_model_spec(r):
    return ["evaluate", "--station", "Synth", "--model", "nodir"], "--model 'nodir'"


@case
def evaluate_model_dir_missing(r):
    return ["evaluate", "--station", "Synth", "--model", f"x={r / 'none'}"], "--model"


@case
def evaluate_corrupt_partition(r):
    (data(r) / "store" / "station=Synth" / "data.parquet").write_bytes(b"garbage")
    return ["evaluate", "--station", "Synth"], "corrupt partition"


@case
def evaluate_bad_shard(r):
    return ["evaluate", "--shard", "x/2"], "--shard"


@case
def evaluate_bad_format(r):
    return ["evaluate", "--format", "xml"], "--format 'xml'"


@case
def evaluate_custom_standard_decreasing(r):
    return ["evaluate", "--station", "Synth", "--standard", str(standard_toml(r, "5"))], "increase"


@case
def stations_bad_format(r):
    return ["stations", "--format", "xml"], "--format 'xml'"


@case
def levels_negative_value(r):
    return ["levels", "--value", "-3"], "--value -3.0"


@case
def levels_standard_nan(r):
    return ["levels", "--standard", str(standard_toml(r, "nan"))], "must be finite"


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_or_fault_is_one_line_exit_2_nothing_lost(template, tmp_path, name):
    root = tmp_path / "root"
    shutil.copytree(template, root, symlinks=True)
    args, message = CASES[name](root)
    before = tree_digest(root)
    try:
        r = runner.invoke(app, ["--data-dir", str(data(root)), *args])
    finally:
        while HELD:
            os.close(HELD.pop())
    err = r.stderr.strip()  # progress lines (stdout) may come first; the error is one line
    assert r.exit_code == 2, f"{name}: exit {r.exit_code}: {r.output}{r.exception!r}"
    assert "Traceback" not in r.output and "\n" not in err, r.output
    assert err.startswith("error: ") and message in err, r.output
    assert tree_digest(root) == before


def test_the_catalogue_has_at_least_60_cases():
    assert len(CASES) >= 60
