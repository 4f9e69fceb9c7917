"""Bad command lines end in one line on stderr and a documented exit status, never a
traceback; a run's status decides the exit status; a retried run is stored once."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from riskopt.constraints.config import SETS_DIR
from riskopt.optimizer import rebalance
from riskopt.optimizer.cli import SAMPLES, app
from riskopt.optimizer.cli_support import (
    EXIT_DEGRADED,
    EXIT_FALLBACK,
    EXIT_OK,
    EXIT_USAGE,
    mask_url,
    neutralise_formulas,
)

runner = CliRunner()
PASSWORD = "s3cretpw"
DECISIONS = SAMPLES / "decisions.csv"


def _rebalance(tmp: Path, *extra: str, book: Path = SAMPLES / "book") -> list[str]:
    return ["rebalance", "--book", str(book), "--decisions", str(DECISIONS), *extra]


def _out(tmp: Path, *extra: str) -> list[str]:
    return _rebalance(tmp, "--state", "NORMAL", "--out", str(tmp / "out"), *extra)


def _file(tmp: Path, name: str, content: bytes) -> Path:
    path = tmp / name
    path.write_bytes(content)
    return path


def _full_disk(tmp: Path) -> Path:
    out = tmp / "full"
    out.mkdir()
    (out / "run.json").symlink_to("/dev/full")  # tables of a former run are removed first
    return out


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
DEEP = ("[" + ".".join(["a"] * 10_000) + "]\nx = 1\n").encode()

BAD: dict[str, Callable[[Path], list[str]]] = {
    "--out is a file": lambda t: _rebalance(t, "--out", str(_file(t, "f", b"x"))),
    "--out unwritable": lambda t: _rebalance(t, "--out", "/proc/riskopt/out"),
    "--out on a full disk": lambda t: _rebalance(
        t, "--state", "NORMAL", "--out", str(_full_disk(t))
    ),
    "--store malformed": lambda t: _out(t, "--store", f"postgresql://u:{PASSWORD}@h:port/x"),
    "--store not a URL": lambda t: _out(t, "--store", "not a url"),
    "--store dead port": lambda t: _out(
        t, "--store", f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/x"
    ),
    "--store missing driver": lambda t: _out(t, "--store", f"mysql://u:{PASSWORD}@localhost/x"),
    "--store unknown kind": lambda t: _out(t, "--store", f"nosuchdb://u:{PASSWORD}@h/x"),
    "--store a text file": lambda t: _out(
        t, "--store", f"sqlite:///{_file(t, 'notes.txt', b'hello ' * 400)}"
    ),
    "--store a PNG": lambda t: _out(t, "--store", f"sqlite:///{_file(t, 'x.png', PNG)}"),
    "--store in memory": lambda t: _out(t, "--store", "sqlite://"),
    "--constraints not UTF-8": lambda t: _out(
        t, "--constraints", str(_file(t, "c.toml", b"[position]\nmax_weight = 0.05 # \xff\xfe\n"))
    ),
    "--constraints nested 10,000 deep": lambda t: _out(
        t, "--constraints", str(_file(t, "deep.toml", DEEP))
    ),
    "--constraints /dev/zero": lambda t: _out(t, "--constraints", "/dev/zero"),
    "--constraints a folder": lambda t: _out(t, "--constraints", str(t)),
    "--now without offset": lambda t: _out(t, "--now", "2026-11-20T16:00:00"),
    "--now not a time": lambda t: _out(t, "--now", "yesterday"),
    "--book not a folder": lambda t: _rebalance(t, book=t / "nope"),
    "check-constraints /dev/zero": lambda t: ["check-constraints", "/dev/zero"],
    "synth --out a file": lambda t: ["synth", "--out", str(_file(t, "f", b"x")), "--n", "20"],
    "db upgrade to no such revision": lambda t: [
        "db",
        "upgrade",
        "--url",
        f"sqlite:///{t / 'db.sqlite'}",
        "--revision",
        "zzzz",
    ],
    "db downgrade a missing file": lambda t: [
        "db",
        "downgrade",
        "--url",
        f"sqlite:///{t / 'missing.sqlite'}",
    ],
    "db init dead port": lambda t: [
        "db",
        "init",
        "--url",
        f"postgresql+psycopg://u:{PASSWORD}@127.0.0.1:1/x",
    ],
    "report on a missing file": lambda t: ["report", "--db", f"sqlite:///{t / 'none.sqlite'}"],
    "batch on /dev/zero": lambda t: ["batch", "/dev/zero", "--serial"],
    "batch --store missing driver": lambda t: [
        "batch",
        str(t),
        "--serial",
        "--store",
        f"mysql+pymysql://u:{PASSWORD}@localhost/x",
    ],
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_command_line_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    args = BAD[case](tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_USAGE, (case, result.output)
    assert "Traceback" not in result.output
    assert PASSWORD not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("riskopt: error: "), result.output
    assert len(lines[0]) > len("riskopt: error: ") + 10  # it names the problem


@pytest.mark.parametrize("command", ["downgrade", "upgrade"])
def test_migrating_a_missing_sqlite_file_does_not_create_it(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "missing.sqlite"
    result = runner.invoke(app, ["db", command, "--url", f"sqlite:///{missing}"])
    assert result.exit_code == EXIT_USAGE and "does not exist" in result.output
    assert not missing.exists()
    created = runner.invoke(app, ["db", "init", "--url", f"sqlite:///{missing}"])
    assert created.exit_code == 0 and missing.exists()


def test_a_password_is_masked_in_any_url() -> None:
    assert PASSWORD not in mask_url(f"postgresql://u:{PASSWORD}@h/x")
    assert PASSWORD not in mask_url(f"postgresql://u:{PASSWORD}@h:port/x")  # does not parse
    assert mask_url("sqlite:///a.sqlite") == "sqlite:///a.sqlite"


def _sample_copy(tmp: Path) -> Path:
    book = tmp / "book"
    shutil.copytree(SAMPLES / "book", book)
    return book


def _edit_csv(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def edit(book: Path) -> None:
        path = book / f"{name}.csv"
        change(pd.read_csv(path, dtype=str, keep_default_na=False)).to_csv(path, index=False)

    return edit


def _cell(column: int, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        frame.iloc[0, column] = value
        return frame

    return change


def _twice(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([frame, frame.iloc[:3]], ignore_index=True)


def _returns_as_csv(change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def edit(book: Path) -> None:
        frame = pd.read_parquet(book / "returns.parquet").astype(str)
        (book / "returns.parquet").unlink()
        change(frame).to_csv(book / "returns.csv", index=False)

    return edit


def _book_toml(content: bytes) -> Callable[[Path], None]:
    return lambda book: (book / "book.toml").write_bytes(content)


BROKEN_BOOKS: dict[str, Callable[[Path], None]] = {
    "text in loadings": _edit_csv("loadings", _cell(1, "abc")),
    "text in factor_cov": _edit_csv("factor_cov", _cell(2, "abc")),
    "text in specific_var": _edit_csv("specific_var", _cell(1, "abc")),
    "text in returns": _returns_as_csv(_cell(2, "abc")),
    "duplicated rows in positions": _edit_csv("positions", _twice),
    "duplicated rows in market": _edit_csv("market", _twice),
    "duplicated rows in loadings": _edit_csv("loadings", _twice),
    "duplicated rows in strategy_nav": _edit_csv("strategy_nav", _twice),
    "unparseable date in nav_history": _edit_csv("nav_history", _cell(0, "31/31/2024")),
    "unparseable date in strategy_nav": _edit_csv("strategy_nav", _cell(0, "not a date")),
    "unparseable date in returns": _returns_as_csv(_cell(0, "soon")),
    "book.toml not TOML": _book_toml(b"as_of = = 2026\n"),
    "book.toml not UTF-8": _book_toml(b"as_of = 2026-11-20\nnav = 1e9 # \xff\n"),
    "book.toml bad values": _book_toml(b'as_of = "someday"\nnav = "lots"\n'),
    "book.toml risk_model not a table": _book_toml(
        b"as_of = 2026-11-20\nnav = 1e9\nrisk_model=1\n"
    ),
    "a column named twice": _edit_csv(
        "market", lambda m: m.set_axis([*m.columns[:-1], "price"], axis=1)
    ),
    "fractional lot_size": _edit_csv("market", lambda m: m.assign(lot_size="2.9")),
}


@pytest.mark.parametrize("case", list(BROKEN_BOOKS))
def test_a_broken_book_directory_runs_degraded(case: str, tmp_path: Path) -> None:
    book = _sample_copy(tmp_path)
    BROKEN_BOOKS[case](book)
    decisions = pd.read_csv(DECISIONS)
    result = rebalance(book, decisions, "default", state="NORMAL")
    assert result.run.status == "DEGRADED", case
    assert (result.actions["action_type"] == "REJECTED").all()
    assert result.run.warnings[0].startswith("portfolio state could not be loaded")
    # The run carries the book's date where book.toml still gives it, else none: never
    # the day it ran.
    unreadable = case in ("book.toml not TOML", "book.toml not UTF-8", "book.toml bad values")
    assert result.run.as_of == (None if unreadable else dt.date(2026, 11, 20))


@pytest.mark.parametrize("case", ["text in loadings", "duplicated rows in positions"])
def test_the_command_line_gives_a_broken_book_exit_4(case: str, tmp_path: Path) -> None:
    book = _sample_copy(tmp_path)
    BROKEN_BOOKS[case](book)
    result = runner.invoke(app, _rebalance(tmp_path, "--out", str(tmp_path / "out"), book=book))
    assert result.exit_code == EXIT_DEGRADED, result.output
    assert "Traceback" not in result.output
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["status"] == "DEGRADED"


def _set_file(tmp: Path, old: str, new: str) -> Path:
    text = (SETS_DIR / "default.toml").read_text()
    assert old in text
    path = tmp / "set.toml"
    path.write_text(text.replace(old, new))
    return path


def test_a_solver_that_cannot_state_the_problem_exits_3(tmp_path: Path) -> None:
    # OSQP cannot state the default set's volatility cone: the de-risk fallback.
    cs = _set_file(tmp_path, 'chain = ["CLARABEL", "CLARABEL_CVXPY", "SCS"]', 'chain = ["OSQP"]')
    result = runner.invoke(app, _out(tmp_path, "--constraints", str(cs)))
    assert result.exit_code == EXIT_FALLBACK, result.output
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "FALLBACK"


def test_a_set_that_does_not_fit_is_degraded_or_with_strict_exit_2(tmp_path: Path) -> None:
    cs = _set_file(tmp_path, '# "Information Technology" = 0.20', '"No Such Sector" = 0.20')
    result = runner.invoke(app, _out(tmp_path, "--constraints", str(cs)))
    assert result.exit_code == EXIT_DEGRADED, result.output
    strict = runner.invoke(app, _out(tmp_path, "--constraints", str(cs), "--strict"))
    assert strict.exit_code == EXIT_USAGE, strict.output
    (line,) = [line for line in strict.output.splitlines() if line.strip()]
    assert "No Such Sector" in line and "Traceback" not in strict.output


def test_a_retry_with_the_same_run_id_is_stored_once(tmp_path: Path) -> None:
    db = tmp_path / "runs.sqlite"
    args = _out(tmp_path, "--store", f"sqlite:///{db}", "--run-id", "cron-2026-11-20")
    args += ["--now", "2026-11-20T16:00:00+00:00"]
    for _ in range(2):
        result = runner.invoke(app, args)
        assert result.exit_code == EXIT_OK, result.output
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        runs = conn.execute(sa.text("select run_id from risk_runs")).scalars().all()
        actions = conn.execute(sa.text("select count(*) from risk_actions")).scalar()
    engine.dispose()
    assert runs == ["cron-2026-11-20"]
    assert actions == len(pd.read_csv(tmp_path / "out" / "actions.csv"))


def test_a_batch_row_with_a_typo_in_its_set_is_degraded_and_named(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    book, decisions = SAMPLES / "book", DECISIONS
    manifest.write_text(
        "book,decisions,run_id,constraint_set,state\n"
        f"{book},{decisions},good,default,NORMAL\n"
        f"{book},{decisions},typo,defualt,NORMAL\n"
    )
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(manifest), "--serial", "--out", str(out)])
    assert result.exit_code == EXIT_DEGRADED, result.output
    assert "typo: DEGRADED" in result.output and "defualt" in result.output
    summary = pd.read_csv(out / "summary.csv").set_index("run_id")
    assert summary.loc["typo", "status"] == "DEGRADED" and "defualt" in summary.loc["typo", "error"]
    assert summary.loc["good", "status"] in ("OPTIMAL", "RELAXED")


def test_a_manifest_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"book,decisions,book\n{SAMPLES / 'book'},{DECISIONS},x\n")
    result = runner.invoke(app, ["batch", str(manifest), "--serial"])
    assert result.exit_code == EXIT_USAGE and "'book'" in result.output


def test_formula_like_text_is_neutralised_and_numbers_are_not() -> None:
    frame = pd.DataFrame(
        {
            "ticker": ["=HYPERLINK(1)", "+1", "-X", "@SUM", "\tA", "\rB", "AAA", None],
            "weight": [-0.5, 1.0, -2.0, 0.0, 1.0, 2.0, 3.0, 4.0],
        }
    )
    out = neutralise_formulas(frame)
    assert list(out["ticker"][:6]) == ["'=HYPERLINK(1)", "'+1", "'-X", "'@SUM", "'\tA", "'\rB"]
    assert out["ticker"][6] == "AAA" and pd.isna(out["ticker"][7])
    assert out["weight"].equals(frame["weight"])
    assert frame["ticker"][0] == "=HYPERLINK(1)"  # the caller's frame is left alone


def test_the_cli_neutralises_formulas_in_what_it_writes(tmp_path: Path) -> None:
    decisions = pd.read_csv(DECISIONS)
    decisions.loc[0, "decision_id"] = "=cmd|' /C calc'!A0"
    decisions.loc[1, "strategy_id"] = "@evil"
    path = tmp_path / "d.csv"
    decisions.to_csv(path, index=False)
    args = ["rebalance", "--book", str(SAMPLES / "book"), "--decisions", str(path)]
    result = runner.invoke(app, [*args, "--state", "NORMAL", "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_OK, result.output
    for name in os.listdir(tmp_path / "out"):
        if name.endswith(".csv"):
            text = (tmp_path / "out" / name).read_text()
            assert "\n=" not in text and ",=" not in text and ",@" not in text, name
    actions = pd.read_csv(tmp_path / "out" / "actions.csv", dtype=str)
    assert "'=cmd|' /C calc'!A0" in set(actions["decision_id"])


def test_a_degraded_run_writes_no_targets_and_cannot_be_explained(tmp_path: Path) -> None:
    """A volatility in percent runs DEGRADED: no targets file (an empty one could be read
    as "hold nothing"), no former run's tables left beside it, and explain says why."""
    book = tmp_path / "book"
    shutil.copytree(SAMPLES / "book", book)
    market = pd.read_csv(book / "market.csv")
    market.loc[0, "volatility"] = 30.0
    market.to_csv(book / "market.csv", index=False)
    out = tmp_path / "out"
    runner.invoke(app, ["demo", "--out", str(out)])
    assert (out / "targets.csv").is_file()
    args = ["--book", str(book), "--decisions", str(SAMPLES / "decisions.csv")]
    result = runner.invoke(app, ["rebalance", *args, "--out", str(out), "--state", "NORMAL"])
    assert result.exit_code == 4
    assert "DEGRADED: no targets; the current book is held as it is" in result.stdout
    assert "given in percent?" in result.stdout
    assert sorted(p.name for p in out.iterdir() if p.suffix != ".sqlite") == [
        "actions.csv",
        "report.html",
        "run.json",
    ]
    explained = runner.invoke(app, ["explain", str(out), "COM00044"])
    assert explained.exit_code == 2 and "is DEGRADED: it made no targets" in explained.output
    assert "Traceback" not in explained.output
