"""The CLI boundary for ingest/stations/download: one-line errors, exit 2, store untouched."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import BEIJING, needs_beijing, tree_digest, uci_frame, write_csv
from typer.testing import CliRunner

from aqi.cli import app

runner = CliRunner()


def aqi(*args: str, data_dir: Path):
    return runner.invoke(app, ["--data-dir", str(data_dir), *args])


@pytest.fixture
def store(tmp_path):
    """A data dir whose store already holds station Alpha."""
    d = tmp_path / "d"
    assert aqi("ingest", str(write_csv(uci_frame(), tmp_path / "ok.csv")), data_dir=d).exit_code == 0
    return d


def _bad(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """(extra CLI args, expected message fragment) for one kind of bad input."""
    f = tmp_path / f"{case}.csv"
    df = uci_frame(hours=12)
    if case == "missing_file":
        return [str(tmp_path / "nope.csv")], "nope.csv: file not found"
    if case == "empty":
        f.write_text("")
        return [str(f)], "empty.csv: file is empty"
    if case == "header_only":
        f.write_text(",".join(df.columns) + "\n")
        return [str(f)], "header_only.csv: file is empty"
    if case == "binary":
        f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00" * 20)
        return [str(f)], "not a CSV file"
    if case == "missing_column":
        write_csv(df.drop(columns=["PM2.5"]), f)
        return [str(f)], "missing_column.csv: not in the UCI Beijing layout (missing PM2.5)"
    if case == "bad_number":
        df["PM10"] = df["PM10"].astype(object)
        df.loc[4, "PM10"] = "12,5x"
        write_csv(df, f)
        return [str(f)], "bad_number.csv: line 6, column PM10: cannot parse '12,5x'"
    if case == "negative":
        df.loc[2, "PM2.5"] = -4
        write_csv(df, f)
        return [str(f)], "negative.csv: line 4, column pm25: negative concentration -4"
    if case == "above_cap":
        df.loc[3, "O3"] = 99999
        write_csv(df, f)
        return [str(f)], "above_cap.csv: line 5, column o3: value outside physical bounds"
    if case == "duplicate_hours":
        df = pd.concat([df, df.iloc[[7]].assign(**{"PM2.5": 999})])
        write_csv(df, f)
        return [str(f)], "duplicate_hours.csv: lines 9 and 14: station Alpha has two different values"
    if case == "station_path":
        write_csv(df.assign(station="../evil"), f)
        return [str(f)], "invalid station name '../evil'"
    if case == "zip_without_csv":
        z = tmp_path / "empty.zip"
        with zipfile.ZipFile(z, "w") as zf:
            zf.writestr("readme.txt", "nothing")
        return [str(z)], "empty.zip: zip archive holds no CSV file"
    raise AssertionError(case)


CASES = [
    "missing_file",
    "empty",
    "header_only",
    "binary",
    "missing_column",
    "bad_number",
    "negative",
    "above_cap",
    "duplicate_hours",
    "station_path",
    "zip_without_csv",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2_store_untouched(tmp_path, store, case):
    args, message = _bad(tmp_path, case)
    before = tree_digest(store)
    r = aqi("ingest", *args, data_dir=store)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert r.output.count("\n") == 1 and "Traceback" not in r.output
    assert tree_digest(store) == before


def test_invalid_missing_policy_sets_nan(tmp_path):
    args, _ = _bad(tmp_path, "negative")
    d = tmp_path / "d2"
    assert aqi("ingest", "--invalid", "missing", *args, data_dir=d).exit_code == 0


def test_non_hourly_timestamps(tmp_path, store):
    df = pd.DataFrame({"ts": ["2020-01-01 00:00", "2020-01-01 00:30"], "pm": [1, 2]})
    df.to_csv(tmp_path / "half.csv", index=False)
    m = tmp_path / "m.toml"
    m.write_text(
        '[time]\ncolumn = "ts"\ntimezone = "UTC"\n[station]\nname = "X"\n[columns]\npm25 = "pm"\n'
    )
    r = aqi("ingest", str(tmp_path / "half.csv"), "--mapping", str(m), data_dir=store)
    assert r.exit_code == 2 and "half.csv: line 3: timestamp" in r.output
    assert "not on the hour" in r.output


@pytest.mark.parametrize(
    "toml, message",
    [
        ('[time\ncolumn = "ts"', "malformed TOML mapping"),
        (
            '[time]\ncolumn = "ts"\ntimezone = "Mars/Olympus"\n[station]\nname="X"',
            "unknown timezone",
        ),
        (
            '[time]\ncolumn = "ts"\ntimezone = "UTC"\n[station]\nname="X"\n[columns]\npm3 = "a"',
            "unknown canonical column",
        ),
    ],
)
def test_bad_mapping(tmp_path, store, toml, message):
    (tmp_path / "m.toml").write_text(toml)
    r = aqi("ingest", str(tmp_path / "ok.csv"), "--mapping", str(tmp_path / "m.toml"), data_dir=store)
    assert r.exit_code == 2 and message in r.output and "m.toml" in r.output


def test_data_dir_not_writable(tmp_path, uci_csv):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # root ignores permissions: use a path under a regular file
            ro = tmp_path / "ok.txt"
            ro.write_text("")
        r = aqi("ingest", str(uci_csv), data_dir=ro)
        assert r.exit_code == 2 and "--data-dir" in r.output and "not writable" in r.output
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_stations_table_and_json(store):
    r = aqi("stations", data_dir=store)
    assert r.exit_code == 0 and "Alpha" in r.output
    rows = json.loads(aqi("stations", "--format", "json", data_dir=store).output)
    assert rows[0]["station"] == "Alpha" and rows[0]["rows"] == 48


def test_stations_on_empty_store(tmp_path):
    r = aqi("stations", data_dir=tmp_path)
    assert r.exit_code == 2 and "run `aqi ingest PATH` first" in r.output


def test_help_ingest_stations_never_import_tensorflow(tmp_path):
    code = (
        "import sys; from typer.testing import CliRunner; from aqi.cli import app; r = CliRunner();"
        f"d = {str(tmp_path)!r}; csv = {str(write_csv(uci_frame(), tmp_path / 'x.csv'))!r};"
        "assert r.invoke(app, ['--help']).exit_code == 0;"
        "assert r.invoke(app, ['--data-dir', d, 'ingest', csv]).exit_code == 0;"
        "assert r.invoke(app, ['--data-dir', d, 'stations']).exit_code == 0;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- download, against a local HTTP server on 127.0.0.1 -------------------------------------


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _small_zip(path: Path, member: str = "PRSA_Data_Tiny_20130301-20170228.csv") -> bytes:
    buf = io.StringIO()
    uci_frame("Tiny").to_csv(buf, index=False, na_rep="NA")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, buf.getvalue())
    return path.read_bytes()


def test_download_verifies_and_ingests(tmp_path, http_dir):
    root, base = http_dir
    digest = hashlib.sha256(_small_zip(root / "tiny.zip")).hexdigest()
    d = tmp_path / "d"
    r = aqi("download", "--url", f"{base}/tiny.zip", "--sha256", digest, "-q", data_dir=d)
    assert r.exit_code == 0, r.output
    assert f"sha256 {digest[:12]}" in r.output and "0 CSV(s) match" in r.output  # not a UCI file
    assert (d / "raw" / "tiny.zip").read_bytes() == (root / "tiny.zip").read_bytes()
    assert aqi("ingest", str(d / "raw" / "tiny.zip"), data_dir=d).exit_code == 0


@pytest.mark.parametrize(
    "problem, message",
    [
        ("checksum", "sha256 mismatch"),
        ("tampered", "does not match the published UCI file"),
        ("missing", "download failed"),
        ("not_zip", "not a zip archive"),
    ],
)
def test_download_failures_leave_nothing(tmp_path, http_dir, problem, message):
    root, base = http_dir
    name, sha = "f.zip", None
    if problem == "checksum":
        _small_zip(root / name)
        sha = "0" * 64
    elif problem == "tampered":  # a known UCI file name with other content
        _small_zip(root / name, "PRSA_Data_Dongsi_20130301-20170228.csv")
    elif problem == "not_zip":
        (root / name).write_text("<html>error page</html>")
    args = ["download", "--url", f"{base}/{name}", "-q"] + (["--sha256", sha] if sha else [])
    (tmp_path / "kept").mkdir()  # a data folder that existed stays; the folders made go
    for d in (tmp_path / "d", tmp_path / "kept"):
        r = aqi(*args, data_dir=d)
        assert r.exit_code == 2 and message in r.output
    assert not (tmp_path / "d").exists() and list((tmp_path / "kept").iterdir()) == []


@needs_beijing
def test_download_checks_real_uci_files_against_published_digests(tmp_path, http_dir):
    root, base = http_dir
    name = "PRSA_Data_Dongsi_20130301-20170228.csv"
    with zipfile.ZipFile(root / "uci.zip", "w") as z:
        z.write(BEIJING / name, f"PRSA_Data_20130301-20170228/{name}")
    r = aqi("download", "--url", f"{base}/uci.zip", "-q", data_dir=tmp_path / "d")
    assert r.exit_code == 0 and "1 CSV(s) match the published UCI sha256" in r.output


@pytest.mark.parametrize(
    "args, msg",
    [
        (["train", "--station", "X", "--epochs", "abc"], "Invalid value for '--epochs'"),
        (["train"], "Missing option '--station'"),
        (["--bogus"], "No such option: --bogus"),
    ],
)
def test_a_usage_error_from_the_console_entry_is_one_line(args, msg):
    """What the parser itself refuses (Click's errors) is one line on stderr and exit 2, as every
    other bad input is; through the real console entry, which CliRunner does not use."""
    r = subprocess.run([sys.executable, "-m", "aqi", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and msg in r.stderr and "--help" in r.stderr
