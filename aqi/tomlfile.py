"""A user's TOML file (a mapping, a custom AQI standard), read with errors that name it."""

from __future__ import annotations

from pathlib import Path

from aqi.config import AqiError


def read_toml(path: Path, what: str) -> dict:
    """Parse a user's TOML file; a missing or malformed file is an AqiError naming it."""
    import tomllib

    if Path(path).exists() and not Path(path).is_file():  # a folder; a FIFO would block
        raise AqiError(f"{path}: not a regular file; give the {what} TOML file")
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AqiError(f"{path}: {what} file not found") from None
    except OSError as e:  # a folder, a FIFO, no permission
        raise AqiError(f"{path}: cannot read the {what} file ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise AqiError(f"{path}: malformed TOML {what}: {e}") from None
