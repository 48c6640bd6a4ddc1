"""Fetch the UCI Beijing archive (or any zip of CSVs) into `data/raw/`, with progress and checksums.

The archive's own digest is not published by UCI, so the check is on what matters: each PRSA CSV inside
(nested zips too) must match the sha256 of the published files (`UCI_SHA256`); `--sha256` adds
a check of the archive itself.
"""

from __future__ import annotations

import contextlib
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

from aqi.config import AqiError
from aqi.datadir import raw_dir
from aqi.term import console

PRSA_RE = re.compile(r"PRSA_Data_([A-Za-z]+)_\d{8}-\d{8}\.csv$")

# The 12 UCI Beijing files as published (sha256 of each CSV; README of ../shared/data/beijing-multisite).
UCI_URL = "https://archive.ics.uci.edu/static/public/501/beijing+multi+site+air+quality+data.zip"
UCI_SHA256 = {
    "Aotizhongxin": "a94fbcfc71708b6ffdc033360163d91efb7f675e496f6b5860929aa96b96351b",
    "Changping": "a2e21402a6d95fb7043f87959e6e3dcbecb957aac356a6f8028a85b047c772e7",
    "Dingling": "3d8dff81f18a80d9f455876a785642bffe1e9b9924ec1e6b7ce8cca790432eeb",
    "Dongsi": "9c0020214425e5ee2a64d42f97a1f632e1d8f6b53ad50edd85a686cc7999f27e",
    "Guanyuan": "59390fee3b032597b387491f5230e7edb90a8558e30217ebd6d9befbe669fbf9",
    "Gucheng": "10ae48801ea55869fee56a48b885fb1127859c130551888d71673f34216ba951",
    "Huairou": "812dcbe848b3ba2c2d25731064797bff803c46eb0c602156a1fa044df136dc26",
    "Nongzhanguan": "572cf87b65ef543cd55d3a711b28474def224a46b0ec3fc8add8aaf13b67a487",
    "Shunyi": "520b59e4ead3b0cfe7f1ed673e30275de8441e999db6f413d5172d2277b8c15a",
    "Tiantan": "0743e34799cf1ee36195b73321b91baa5625276532e7263c588f68cdef3b4daa",
    "Wanliu": "0b1a6d754a07f0def2f55434ddfa3870dcd0063b7f766a6f66b6c11bb05a377a",
    "Wanshouxigong": "ab1d6a356d6997a45f6d657ad47de1e05a4a08d4a7015b38a329a90665ab74d0",
}


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
    made = [d for d in (raw, *raw.parents) if not d.exists()]  # deepest first
    tmp = raw / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        try:
            raw.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AqiError(f"--data-dir {data_dir}: not writable ({e.strerror})") from None
        digest = _fetch(url, tmp, name, quiet, timeout)
        if sha256 and digest != sha256.lower():
            raise AqiError(f"{url}: sha256 mismatch (got {digest}, expected {sha256.lower()})")
        checked = verify_archive(tmp, url)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for d in made:  # a failed download leaves the folders as it found them
            with contextlib.suppress(OSError):  # the error to report is the download's
                d.rmdir()  # only when empty
        raise
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
