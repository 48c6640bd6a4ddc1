"""The raw files an ingest reads: files, folders, zip and gzip archives → named byte sources.

Every limit is checked before a byte is parsed or inflated (`IngestConfig`): the size after
decompression, the inflation ratio of a zip member, the nesting of zips, the length of a line, and
that a path is a regular file (a FIFO would block, a device never end).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aqi.config import AqiError, IngestConfig

SUFFIXES = (".csv", ".zip", ".gz", ".dat")  # what a folder or an archive is read for


@dataclass(frozen=True)
class Source:
    name: str  # shown in messages: a path, or 'archive.zip!member.csv'
    data: bytes
    sha256: str
    listed: bool = False  # found in a folder named on the command line, not named itself


def collect_sources(paths: list[Path], cfg: IngestConfig = IngestConfig()) -> list[Source]:
    """Every CSV named by `paths`: files, folders (non-recursive, sorted) and zips (nested zips
    too), each checked against `cfg`'s size limits before it is read or inflated."""
    out: list[Source] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.iterdir() if f.name.lower().endswith(SUFFIXES))
            if not files:
                raise AqiError(f"{p}: folder holds no {', '.join(SUFFIXES)} file")
            out += [dataclasses.replace(s, listed=True) for s in collect_sources(files, cfg)]
        elif not p.exists():
            raise AqiError(f"{p}: file not found")
        elif not p.is_file():  # a FIFO or a device would block or never end
            raise AqiError(f"{p}: not a regular file; give a CSV file, a folder or a zip archive")
        else:
            _check_size(str(p), p.stat().st_size, cfg)
            out += _expand(str(p), _read(p), cfg)
    return out


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise AqiError(f"{p}: cannot read ({e.strerror})") from None


def _check_size(name: str, size: int, cfg: IngestConfig) -> None:
    if size > cfg.max_bytes:
        raise AqiError(
            f"{name}: {size / 2**20:.0f} MiB (after decompression), over the limit of "
            f"{cfg.max_bytes / 2**20:.0f} MiB for one source; split the file"
        )


def _check_lines(name: str, data: bytes, cfg: IngestConfig) -> None:
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    longest = int(np.diff(ends, prepend=-1, append=len(data)).max(initial=0)) - 1
    if longest > cfg.max_line:
        raise AqiError(
            f"{name}: a line of {longest} bytes (limit {cfg.max_line}); not an hourly CSV "
            "(one record per line)"
        )


def _gunzip(name: str, data: bytes, cfg: IngestConfig) -> bytes:
    """A .gz source inflated, every member of a concatenated file (`gzip >>`), at most
    `cfg.max_bytes` (a gzip bomb stops there); a file cut short is refused, not read in part."""
    out, rest = b"", data
    try:
        while rest:
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += z.decompress(rest, cfg.max_bytes + 1 - len(out))
            _check_size(name, len(out), cfg)
            if not z.eof:
                raise AqiError(f"{name}: truncated gzip file (no end marker); fetch it again")
            rest = z.unused_data.lstrip(b"\0")  # padding between members is allowed
    except zlib.error as e:
        raise AqiError(f"{name}: corrupt gzip file ({e}); fetch it again") from None
    return out


def _expand(name: str, data: bytes, cfg: IngestConfig, depth: int = 0) -> list[Source]:
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(name, data, cfg)
    if not zipfile.is_zipfile(io.BytesIO(data)):
        _check_lines(name, data, cfg)
        return [Source(name, data, hashlib.sha256(data).hexdigest())]
    if depth >= 2:
        raise AqiError(f"{name}: zip nested deeper than 2 archives; unpack it first")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = sorted((m for m in z.infolist() if _wanted(m.filename)), key=lambda m: m.filename)
            for m in members:  # sizes the archive declares; zipfile never inflates past them
                _check_size(f"{name}!{m.filename}", m.file_size, cfg)
                if m.file_size > cfg.max_ratio * max(m.compress_size, 1 << 10):
                    raise AqiError(
                        f"{name}!{m.filename}: inflates {m.file_size // max(m.compress_size, 1)}x "
                        f"(limit {cfg.max_ratio}x): not a CSV archive (a zip bomb?)"
                    )
            found = [
                s for m in members for s in _expand(f"{name}!{m.filename}", z.read(m), cfg, depth + 1)
            ]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise AqiError(f"{name}: corrupt zip archive ({e}); fetch it again") from None
    if not found:
        raise AqiError(f"{name}: zip archive holds no CSV file")
    return found


def _wanted(member: str) -> bool:
    return member.lower().endswith(SUFFIXES) and not member.startswith("__MACOSX")
