"""`aqi` command line: thin wiring. Each command calls one library function; AqiError → one line, exit 2.
Library modules are imported inside the commands: `aqi --help`, `ingest`, `stations` never import TF."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from aqi.config import AqiError, default_data_dir
from aqi.datadir import evaluate_dir
from aqi.shards import one_or_all


class AqiTyper(typer.Typer):
    """The `aqi` console entry: TF's native stderr lines go elsewhere before any import (not tests)."""

    def __call__(self, *args, **kwargs):
        from aqi.term import one_line_errors
        from aqi.tfboot import route_native_stderr

        route_native_stderr()
        one_line_errors(lambda: super(AqiTyper, self).__call__(*args, standalone_mode=False, **kwargs))


app = AqiTyper(help="PM2.5 air-quality forecasting: ingest, train, forecast, evaluate.",
               no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)  # fmt: skip
STATE: dict[str, Path] = {}
Opt = typer.Option  # shorthand: every option defaults to None = the value in aqi/config.py


def data_dir() -> Path:
    return STATE.get("data_dir") or default_data_dir()


def user_errors(fn):
    """Turn AqiError into a one-line message on stderr and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AqiError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        except OSError as e:  # disk full, a read-only folder: every write is atomic, nothing torn
            why = e.strerror or e  # an OSError raised with one argument has no strerror
            typer.echo(f"error: {e.filename or data_dir()}: {why}; fix it and rerun", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def main(
    data_dir_opt: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="AQI_DATA_DIR", help="Folder aqi writes to. Default ./data."),
    ] = None,
) -> None:
    STATE["data_dir"] = data_dir_opt or default_data_dir()


@app.command()
@user_errors
def download(
    url: Annotated[str, typer.Option(help="Archive to fetch (zip of CSVs).")] = "",
    sha256: Annotated[str | None, typer.Option(help="Expected sha256 of the archive.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download the UCI Beijing archive into DATA_DIR/raw/ (checksums verified)."""
    from aqi import download as dl

    path, digest, checked = dl.download(data_dir(), url or dl.UCI_URL, sha256, quiet)
    typer.echo(f"saved {path} (sha256 {digest[:12]}…; {checked} CSV(s) match the published UCI sha256)")


@app.command()
@user_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, folders of them, zip or gzip archives.")],
    mapping: Annotated[Path | None, typer.Option(help="TOML mapping for non-UCI layouts.")] = None,
    station: Annotated[str | None, Opt(help="Only this station (--mapping: the file's).")] = None,
    invalid: Annotated[str, Opt(help="Negative or out-of-range values: reject or missing.")] = "reject",
    replace: Annotated[bool, typer.Option(help="The files' hours win whole, missing too.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
) -> None:
    """Validate hourly files (UCI, OpenAQ, AirNow, AQS, --mapping) and upsert them into the store."""
    from aqi.config import IngestConfig
    from aqi.ingest import ingest as run
    from aqi.report import ingest_lines

    if invalid not in ("reject", "missing"):
        raise AqiError(f"--invalid {invalid!r}: use 'reject' or 'missing'")
    notes: list[str] = []
    reports = run(paths, data_dir(), mapping, station, IngestConfig(invalid=invalid), replace, notes)
    for line in [] if quiet else ingest_lines(reports, notes):
        typer.echo(line)


@app.command()
@user_errors
def compact() -> None:
    """Fold the hourly ingests (store/_delta/) into the station partitions; run it at a quiet hour."""
    from aqi.ingest import compact_store

    folded, notes = compact_store(data_dir())
    typer.echo(f"{folded} station partition(s) rewritten" + "".join(f"\nnote: {n}" for n in notes))


@app.command()
@user_errors
def stations(
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    locations: Annotated[Path | None, Opt(help="CSV of station,latitude,longitude to store.")] = None,
) -> None:
    """List the stations in the store: time span, rows, missing PM2.5 and overall."""
    from aqi.store import summary

    if locations is not None:
        from aqi.locations import set_locations

        done, other = set_locations(data_dir(), locations)
        typer.echo(f"coordinates of {done} station(s) stored; {other} row(s) of others", err=True)
    rows = summary(data_dir())
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    if fmt != "table":
        raise AqiError(f"--format {fmt!r}: use 'table' or 'json'")
    if not rows:
        raise AqiError(f"no stations in {data_dir() / 'store'}; run `aqi ingest PATH` first")
    from aqi.report import stations_table

    stations_table(rows)


@app.command()
@user_errors
def levels(
    standard: Annotated[
        str | None, Opt(help="Built-in key or a TOML file (default us-epa-2024).")
    ] = None,
    value: Annotated[float | None, Opt(help="PM2.5 in µg/m³ to classify.")] = None,
    all_: Annotated[bool, Opt("--all", help="Print every built-in standard.")] = False,
) -> None:
    """Print an AQI standard's table, or the level and index of one concentration."""
    from aqi.report import levels_view

    levels_view(standard, value, all_, typer.echo)


@app.command()
@user_errors
def train(
    station: Annotated[str, Opt(help="Station id; 'all' or A,B,C: one network model.")],
    per_station: Annotated[bool, Opt(help="With all or a list: one model per station.")] = False,
    finetune: Annotated[bool | None, Opt(help="From the network model (default: one covers X).")] = None,
    shard: Annotated[str | None, Opt(help="i/N: per-station models of the i-th of N shares.")] = None,
    epochs: Annotated[int | None, Opt(help="Maximum epochs.")] = None,
    batch_size: Annotated[int | None, Opt(help="Global batch size.")] = None,
    lr: Annotated[float | None, Opt(help="Peak learning rate.")] = None,
    optimizer: Annotated[str | None, Opt(help="adam|adamw|sgd|nadam|rmsprop|lbfgs")] = None,
    schedule: Annotated[str | None, Opt(help="cosine|exponential|constant")] = None,
    clipnorm: Annotated[float | None, Opt(help="Global gradient-norm clip (0 = off).")] = None,
    patience: Annotated[int | None, Opt(help="Early-stopping patience (epochs).")] = None,
    alpha: Annotated[float | None, Opt(help="Weight of the level term, in [0, 1].")] = None,
    tau: Annotated[float | None, Opt(help="Width of each tanh step, µg/m³.")] = None,
    tau_frac: Annotated[float | None, Opt(help="tau as a fraction of each band width.")] = None,
    tau_anneal: Annotated[float | None, Opt(help="tau × this at epoch 1, shrinking to tau.")] = None,
    scale: Annotated[float | None, Opt(help="µg/m³ of MAE worth one level.")] = None,
    standard: Annotated[str | None, Opt(help="AQI standard key or TOML file.")] = None,
    term_standard: Annotated[str | None, Opt(help="Point's level-term table ('' = --standard).")] = None,
    lookback: Annotated[int | None, Opt(help="L, input hours.")] = None,
    horizon: Annotated[int | None, Opt(help="H, hours ahead.")] = None,
    max_gap: Annotated[int | None, Opt(help="Longest input gap filled, hours.")] = None,
    stale_limit: Annotated[int | None, Opt(help="Hours a forecast carries inputs over.")] = None,
    gap_share: Annotated[float | None, Opt(help="Train windows added with an outage.")] = None,
    train_end: Annotated[str | None, Opt(help="Last target hour of the train split (local).")] = None,
    val_end: Annotated[str | None, Opt(help="Last target hour of validation (local).")] = None,
    test_end: Annotated[str | None, Opt(help="Last target hour of the test split (local).")] = None,
    test_months: Annotated[int | None, Opt(help="Months of test before --test-end (0: none).")] = None,
    arch: Annotated[str | None, Opt(help="mlp|gru")] = None,
    hidden: Annotated[int | None, Opt(help="Units per hidden layer.")] = None,
    layers: Annotated[int | None, Opt(help="Hidden layers.")] = None,
    dropout: Annotated[float | None, Opt(help="Dropout fraction.")] = None,
    members: Annotated[int | None, Opt(help="Ensemble members (averaged).")] = None,
    neighbours_by: Annotated[str | None, Opt(help="correlation|coordinates|auto (network)")] = None,
    head: Annotated[str | None, Opt(help="point|quantile|level")] = None,
    level_weight: Annotated[float | None, Opt(help="Weight of the level head's log loss.")] = None,
    level_ramp: Annotated[float | None, Opt(help="Its weight at the last hour vs the first.")] = None,
    level_loss: Annotated[str | None, Opt(help="ordinal|categorical: its log loss.")] = None,
    level_hidden: Annotated[int | None, Opt(help="Units of the level head's own tower.")] = None,
    level_epochs: Annotated[int | None, Opt(help="Refit epochs of a detached level head.")] = None,
    miss_cost: Annotated[float | None, Opt(help="Cost of a missed unhealthy hour (vs 1).")] = None,
    stay: Annotated[bool | None, Opt(help="The level of now within a margin fit on validation.")] = None,
    quantiles: Annotated[str | None, Opt(help="Quantile levels, e.g. 0.1,0.5,0.9.")] = None,
    finetune_lbfgs: Annotated[int | None, Opt(help="L-BFGS-B iterations after Adam.")] = None,
    seed: Annotated[int | None, Opt(help="Random seed (deterministic on CPU).")] = None,
    device: Annotated[str | None, Opt(help="auto|cpu|gpu|gpu:0,1|cpus:N")] = None,
    resume: Annotated[bool, Opt(help="Continue from the last epoch checkpoint.")] = False,
    replace: Annotated[bool, Opt(help="A,B may replace a network model of more stations.")] = False,
    tensorboard: Annotated[Path | None, Opt(help="Write TensorBoard scalars here.")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress output (batch jobs).")] = False,
    threads: Annotated[int | None, Opt(help="CPU threads (default: TensorFlow's own).")] = None,
) -> None:
    """Train the Keras regressor of one station (or all) with the custom GradientTape loop."""
    from aqi.checks import parse_quantiles
    from aqi.cpus import limit

    if threads is not None:
        limit(threads)  # before TensorFlow starts its thread pools

    station = one_or_all(station, shard)
    given = {k: v for k, v in locals().items() if v is not None}
    given |= {"clipnorm": None} if clipnorm == 0 else {}
    given |= {"quantiles": parse_quantiles(quantiles)} if quantiles is not None else {}
    from aqi.job import RunOptions
    from aqi.report import train_summary
    from aqi.train_network import train_command

    echo = (lambda *_: None) if quiet else typer.echo
    opts = RunOptions(quiet, tensorboard, resume, echo, replace=replace)
    for meta in train_command(data_dir(), station, given, (per_station, finetune), shard, opts):
        typer.echo(train_summary(meta))


@app.command()
@user_errors
def evaluate(
    station: Annotated[str, Opt(help="Station id, or 'all' (every trained station).")] = "all",
    shard: Annotated[str | None, Opt(help="i/N: with --station all, the i-th of N shares.")] = None,
    standard: Annotated[str | None, Opt(help="Score levels with another standard.")] = None,
    fmt: Annotated[str, Opt("--format", help="table or json (the by-horizon summary)")] = "table",
    threads: Annotated[int | None, Opt(help="CPU threads (default: the CPUs this job may use).")] = None,
    model: Annotated[list[str] | None, Opt(help="NAME=DIR: also score DIR/<station> models.")] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q")] = False,
) -> None:
    """Score the model against persistence, seasonal naive, climatology and GBM on the test split."""
    if fmt not in ("table", "json"):
        raise AqiError(f"--format {fmt!r}: use table or json")
    from aqi.cpus import limit

    n = limit(threads)
    from aqi.evaluate import evaluation_report, named_models
    from aqi.resolve import in_shard
    from aqi.summary import by_horizon

    names, torn = in_shard(data_dir(), shard) if one_or_all(station, shard) == "all" else ([station], [])
    if not names and not torn:
        return typer.echo(f"--shard {shard}: none of the trained stations; nothing to do", err=True)
    echo = (lambda *_: None) if quiet or fmt == "json" else typer.echo
    rows = evaluation_report(data_dir(), names, standard, echo, n, named_models(model or []), torn)
    if fmt == "json":
        typer.echo(json.dumps({"by_horizon": by_horizon(rows), "stations": rows}, indent=2))
        return
    from aqi.gap_skill import gap_table
    from aqi.report import evaluation_table, gaps_table, horizon_table

    evaluation_table(rows)
    horizon_table(by_horizon(rows))
    gaps_table(gap_table(rows))
    typer.echo(f"reports in {evaluate_dir(data_dir())}")


@app.command()
@user_errors
def forecast(
    station: Annotated[str, Opt(help="Station id, or 'all' (every trained station).")],
    shard: Annotated[str | None, Opt(help="i/N: with --station all, the i-th of N shares.")] = None,
    at: Annotated[str | None, Opt(help="Issue time (local) to backtest, e.g. 2016-12-01T08:00.")] = None,
    fmt: Annotated[str | None, Opt("--format", help="table, csv or json (default: by --output)")] = None,
    output: Annotated[Path | None, Opt(help="Write to this file instead of the terminal.")] = None,
    standard: Annotated[str | None, Opt(help="AQI standard for levels (default: the model's).")] = None,
    miss_cost: Annotated[float | None, Opt(help="Cost of a missed unhealthy hour (vs 1).")] = None,
) -> None:
    """Forecast the next H hours of PM2.5 with AQI levels from the latest data (or --at)."""
    from aqi.forecast_view import forecast_output, output_format

    fmt, output = output_format(fmt, output)
    station = one_or_all(station, shard)
    from aqi.forecast import forecast_stations

    results, failed = forecast_stations(data_dir(), station, at, standard, miss_cost, shard)
    forecast_output(results, fmt, output, typer.echo)
    if failed:
        typer.echo("\n".join(f"error: {line}" for line in failed), err=True)
        raise typer.Exit(2)


def run() -> None:  # pragma: no cover - console entry for `python -m aqi`
    sys.exit(app())
