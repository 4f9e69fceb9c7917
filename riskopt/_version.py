"""The installed distribution's version, read once from its metadata."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _read() -> str:
    try:
        return version("riskopt")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


__version__ = _read()
