"""What the command line needs around the gate: exit codes, one-line error messages with
credentials masked, a database URL checked before any work, and CSV cells a spreadsheet
would run as formulas neutralised.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from riskopt.data.errors import RiskoptError, ValidationError
from riskopt.optimizer.result import DEGRADED, FALLBACK, OPTIMAL, RELAXED

EXIT_OK = 0
"""The run is ``OPTIMAL`` or ``RELAXED`` (``regress``: every fixture unchanged)."""
EXIT_CHANGED = 1
"""``regress`` only: a fixed portfolio's output changed."""
EXIT_USAGE = 2
"""A usage or input error: bad option, unreadable file, unusable database. Nothing ran."""
EXIT_FALLBACK = 3
"""The solver chain gave no accurate answer: the de-risk-only fallback was used."""
EXIT_DEGRADED = 4
"""The book could not be loaded (no trade) or its constraint set did not fit it
(conservative set): no new risk was taken."""
STATUS_EXIT = {OPTIMAL: EXIT_OK, RELAXED: EXIT_OK, FALLBACK: EXIT_FALLBACK, DEGRADED: EXIT_DEGRADED}

USER_ERRORS = (RiskoptError, OSError, SQLAlchemyError)
"""The errors a user can cause; each becomes one line and exit status 2."""
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula."""
CSV_FLOAT_FORMAT = "%.12g"
"""How the command line writes floats in its CSV tables: 12 significant digits. A weight
(a fraction of NAV, below 100 in size) reads back within 5e-11, a share count below 10¹²
exactly, and no cell carries the noise of floating-point arithmetic
(``-0.0008896452000000001``)."""
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"]+")
_PASSWORD = re.compile(r"(//[^:/@\s]*:)[^@\s]*@")


def exit_code(statuses: list[str]) -> int:
    """The exit status for runs that ended with ``statuses``: the worst one decides."""
    return max((STATUS_EXIT.get(s, EXIT_DEGRADED) for s in statuses), default=EXIT_OK)


def mask_url(url: str) -> str:
    """``url`` with its password hidden (``***``), whether or not it parses."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD.sub(r"\1***@", url)


def scrub(message: str) -> str:
    """``message`` on one line, every URL in it with its password masked."""
    return _URL.sub(_masked_match, " ".join(message.split()))


def _masked_match(match: re.Match[str]) -> str:
    """A URL found in a message, masked; punctuation that ends a sentence stays outside."""
    text = match.group(0)
    url = text.rstrip(":,;.)")
    return mask_url(url) + text[len(url) :]


def describe(err: BaseException) -> str:
    """One line naming the problem of a user error (no traceback, no password)."""
    one_line = getattr(err, "one_line", None)
    if callable(one_line):
        text = str(one_line())
    elif isinstance(err, OSError) and err.strerror:
        target = f": {err.filename}" if err.filename is not None else ""
        text = f"{err.strerror}{target}"
    elif isinstance(err, SQLAlchemyError):
        orig = getattr(err, "orig", None)
        first = str(orig if orig is not None else err).strip().splitlines()
        text = f"database error: {first[0] if first else type(err).__name__}"
    else:
        text = str(err) or type(err).__name__
    return scrub(text)


def check_store(url: str, *, must_exist: bool = False) -> str:
    """Check a database URL before any work: it parses, its driver is installed, it is
    not an in-memory database (which would be lost on exit), and it answers as a database.
    With ``must_exist`` a missing SQLite file is an error rather than created."""
    parsed = _parsed(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file::memory:"):
            raise ValidationError(
                "store", [f"{mask_url(url)} is an in-memory database: nothing would be kept"]
            )
        if must_exist and not Path(database).exists():
            raise ValidationError("store", [f"{mask_url(url)}: {database} does not exist"])
    engine = create_engine(parsed)
    try:
        with engine.connect() as connection:
            inspect(connection).get_table_names()
    finally:
        engine.dispose()
    return url


def _parsed(url: str) -> URL:
    """The URL parsed, with its dialect and driver loaded (each failure a ValidationError)."""
    shown = mask_url(url)
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValidationError("store", [f"{shown}: unknown kind of database"]) from None
    except (ArgumentError, ValueError):
        raise ValidationError("store", [f"not a database URL: {shown!r}"]) from None
    try:
        dialect.import_dbapi()
    except ImportError as err:
        raise ValidationError("store", [f"{shown}: its driver is not installed ({err})"]) from None
    return parsed


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells that a spreadsheet would run as a formula
    start with ``'``; numbers are left alone."""
    out = frame.copy(deep=False)
    for column in out.columns:
        values = out[column]
        if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values):
            continue
        risky = np.fromiter(
            (isinstance(v, str) and v.startswith(FORMULA_STARTS) for v in values),
            dtype=bool,
            count=len(values),
        )
        if risky.any():
            out[column] = values.where(~risky, "'" + values.astype(str))
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as CSV without its index, floats to :data:`CSV_FLOAT_FORMAT`,
    formula-like text neutralised; a failed write names the file."""
    try:
        neutralise_formulas(frame).to_csv(path, index=False, float_format=CSV_FLOAT_FORMAT)
    except OSError as err:
        if err.filename is not None:
            raise
        raise OSError(err.errno, err.strerror or str(err), str(path)) from err
