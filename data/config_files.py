"""Reading small configuration files (TOML sets, ``book.toml``, ``fixture.toml``, manifests)
with a size limit, so that a wrong path such as ``/dev/zero`` fails at once instead of
reading until memory runs out.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1 << 20
"""The largest configuration file read (1 MiB): a shipped set is about 5 kB."""
MAX_TOML_DEPTH = 32
"""The deepest nesting of tables accepted in a TOML file: a constraint set needs four."""


class ConfigFileError(ValueError):
    """A configuration file is too large, not UTF-8, not TOML or nested too deeply."""


def read_config_text(path: str | Path, *, limit: int = MAX_CONFIG_BYTES) -> str:
    """The text of ``path``, read as UTF-8; at most ``limit`` bytes (``OSError`` if unreadable)."""
    with Path(path).open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigFileError(f"{path}: larger than {limit:,} bytes, not a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigFileError(
            f"{path}: not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None


def parse_toml(text: str, source: str = "<toml>") -> dict[str, Any]:
    """Parse TOML text, refusing documents nested deeper than :data:`MAX_TOML_DEPTH`."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigFileError(f"{source}: not valid TOML: {err}") from None
    except RecursionError:  # inline tables nested thousands deep
        raise ConfigFileError(f"{source}: nested too deeply") from None
    if _depth(document) > MAX_TOML_DEPTH:
        raise ConfigFileError(f"{source}: tables nested deeper than {MAX_TOML_DEPTH} levels")
    return document


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file's document, read with :func:`read_config_text` and :func:`parse_toml`."""
    return parse_toml(read_config_text(path), str(path))


def _depth(value: object) -> int:
    """How deeply tables and arrays nest in ``value`` (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list):
            children = list(node)
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_TOML_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
