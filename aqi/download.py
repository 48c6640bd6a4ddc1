"""Fetch the UCI Beijing archive (or any zip of CSVs) into `data/raw/`, with progress and checksums.

The archive's own digest is not published by UCI, so the check is on what matters: each PRSA CSV inside
(nested zips too) must match the sha256 of the published files (`config.UCI_SHA256`); `--sha256` adds
a check of the archive itself.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from aqi.config import UCI_SHA256, UCI_URL, AqiError
from aqi.datadir import raw_dir
from aqi.term import console

PRSA_RE = re.compile(r"PRSA_Data_([A-Za-z]+)_\d{8}-\d{8}\.csv$")


def download(
    data_dir: Path,
    url: str = UCI_URL,
    sha256: str | None = None,
    quiet: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download `url` to data_dir/raw/<name>; verify it; return the path. Nothing is left on failure."""
    raw = raw_dir(data_dir)
    name = Path(unquote(urlparse(url).path)).name or "download.zip"
    dest = raw / name
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise AqiError(f"--data-dir {data_dir}: not writable ({e.strerror})") from None
    tmp = raw / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        digest = _fetch(url, tmp, name, quiet, timeout)
        if sha256 and digest != sha256.lower():
            raise AqiError(f"{url}: sha256 mismatch (got {digest}, expected {sha256.lower()})")
        checked = verify_archive(tmp, url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest, digest, checked


def _fetch(url: str, tmp: Path, name: str, quiet: bool, timeout: float) -> str:
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
                disable=quiet,
            ) as bar:
                task = bar.add_task(f"download {name}", total=total)
                while chunk := r.read(1 << 16):
                    f.write(chunk)
                    h.update(chunk)
                    bar.advance(task, len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AqiError(f"{url}: download failed: {getattr(e, 'reason', e)}") from None
    return h.hexdigest()


def verify_archive(path: Path, label: str) -> int:
    """The archive must be a zip holding CSVs; known PRSA files must match their published sha256.
    Returns the number of CSVs verified against a published digest."""
    if not zipfile.is_zipfile(path):
        raise AqiError(f"{label}: not a zip archive")
    checked, seen = 0, 0
    for member, data in _members(zipfile.ZipFile(path)):
        seen += 1
        m = PRSA_RE.search(member)
        if m and m.group(1) in UCI_SHA256:
            if hashlib.sha256(data).hexdigest() != UCI_SHA256[m.group(1)]:
                raise AqiError(f"{label}: {member} does not match the published UCI file (sha256)")
            checked += 1
    if not seen:
        raise AqiError(f"{label}: zip archive holds no CSV file")
    return checked


def _members(z: zipfile.ZipFile):
    for name in z.namelist():
        if name.lower().endswith(".csv"):
            yield name, z.read(name)
        elif name.lower().endswith(".zip"):
            yield from _members(zipfile.ZipFile(io.BytesIO(z.read(name))))
