"""The ``riskopt`` command line.

Every error a user can cause (a bad path, a bad table, a bad constraint set) is one
clear line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import pandas as pd
import typer
from tqdm import tqdm

from constraints.config import ConstraintSet
from constraints.errors import ConfigError
from constraints.states import describe_state
from data import SAMPLES
from data.errors import RiskoptError, ValidationError
from optimizer.result import RebalanceResult

app = typer.Typer(add_completion=False, no_args_is_help=True, help="riskopt: the convex risk gate.")
T = TypeVar("T")


def _fail(message: str) -> None:
    typer.echo(f"riskopt: error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except (ValidationError, ConfigError) as err:
        _fail(err.one_line())
    except RiskoptError as err:
        _fail(str(err))


class _Steps:
    """A progress bar over named steps, shown on stderr (hidden when not a terminal)."""

    def __init__(self, names: list[str]) -> None:
        self.bar = tqdm(
            total=len(names),
            desc=names[0],
            unit="step",
            file=sys.stderr,
            disable=None,
            leave=False,
            mininterval=1.0,
        )
        self.names = names

    def run(self, index: int, fn: Callable[[], T]) -> T:
        self.bar.set_description(self.names[index])
        out = fn()
        self.bar.update(1)
        return out

    def close(self) -> None:
        self.bar.close()


def _write_outputs(result: RebalanceResult, out: Path, *, store: str | None) -> None:
    from optimizer.store import store_result

    out.mkdir(parents=True, exist_ok=True)
    result.targets.to_csv(out / "targets.csv", index=False)
    result.sleeve_targets.to_csv(out / "sleeve_targets.csv", index=False)
    result.actions.to_csv(out / "actions.csv", index=False)
    result.binding.to_csv(out / "binding.csv", index=False)
    (out / "run.json").write_text(json.dumps(result.run.to_dict(), indent=2, default=str) + "\n")
    if store is not None:
        store_result(result, store)


def _run(
    book_dir: Path,
    decisions_file: Path,
    constraints: str,
    out: Path,
    risk_aversion: float | None,
    store: str | None,
    state: str | None = None,
    drill: bool = False,
) -> None:
    from data.loaders import load_book, load_decisions
    from optimizer.rebalance import rebalance

    steps = _Steps(["load book", "load constraints", "risk gate", "write outputs"])
    try:
        book = steps.run(0, lambda: load_book(book_dir))
        decisions = load_decisions(decisions_file)
        cs = steps.run(1, lambda: ConstraintSet.load(constraints))
        result = steps.run(
            2, lambda: rebalance(book, decisions, cs, risk_aversion=risk_aversion, state=state)
        )
        steps.run(3, lambda: _write_outputs(result, out, store=store))
        others = {}
        if drill and state not in (None, "NORMAL"):
            for other in ("NORMAL", "ELEVATED", "EMERGENCY"):
                if other != state:
                    others[other] = rebalance(
                        book, decisions, cs, risk_aversion=risk_aversion, state=other
                    )
    finally:
        steps.close()
    typer.echo(result.summary())
    if others:
        runs = {**others, str(state): result}
        typer.echo("\nemergency drill: the same decisions under each state")
        typer.echo(f"{'':<12}" + "".join(f"{s:>12}" for s in ("NORMAL", "ELEVATED", "EMERGENCY")))
        for key in ("gross", "net", "long", "short", "volatility"):
            cells = "".join(
                f"{runs[s].run.exposures_after.get(key, float('nan')):>12.2%}"
                for s in ("NORMAL", "ELEVATED", "EMERGENCY")
            )
            typer.echo(f"{key:<12}{cells}")
        for label in ("OK", "SCALED_DOWN", "CAPPED", "REJECTED"):
            cells = "".join(
                f"{int(runs[s].label_counts()[label]):>12}"
                for s in ("NORMAL", "ELEVATED", "EMERGENCY")
            )
            typer.echo(f"{label:<12}{cells}")
    typer.echo(
        f"\noutputs written to {out}/ (targets.csv, actions.csv, run.json"
        + (", riskopt.sqlite)" if store and "riskopt.sqlite" in store else ")")
    )


def _check_state(state: str | None) -> str | None:
    if state is None:
        return None
    if state.upper() not in ("NORMAL", "ELEVATED", "EMERGENCY"):
        raise ValidationError("state", [f"must be NORMAL, ELEVATED or EMERGENCY, got {state!r}"])
    return state.upper()


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/demo"),
    constraints: Annotated[
        str, typer.Option(help="constraint set: a TOML path or a shipped name")
    ] = "default",
    risk_aversion: Annotated[
        float | None,
        typer.Option(help="portfolio risk aversion γ; default: the risk debate sets it"),
    ] = None,
    state: Annotated[
        str,
        typer.Option(help="black-swan state: NORMAL (the demo's own), ELEVATED or EMERGENCY"),
    ] = "NORMAL",
) -> None:
    """Run the shipped sample book through the gate and print a summary.

    The demo shows the calm state unless told otherwise: it passes ``NORMAL`` itself,
    where ``rebalance`` without a state takes the set's default.

    Under ``--state ELEVATED`` or ``EMERGENCY`` the summary ends with the drill: the same
    decisions under every state, side by side.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _user_errors():
        out.mkdir(parents=True, exist_ok=True)
        db = out / "riskopt.sqlite"
        _run(
            SAMPLES / "book",
            SAMPLES / "decisions.csv",
            constraints,
            out,
            risk_aversion,
            f"sqlite:///{db}",
            state=_check_state(state),
            drill=True,
        )


@app.command("rebalance")
def rebalance_cmd(
    book: Annotated[Path, typer.Option(help="book directory (see README)")],
    decisions: Annotated[Path, typer.Option(help="decisions CSV or Parquet file")],
    constraints: Annotated[
        str, typer.Option(help="constraint set: a TOML path or a shipped name")
    ] = "default",
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/rebalance"),
    risk_aversion: Annotated[
        float | None,
        typer.Option(help="portfolio risk aversion γ; default: the risk debate sets it"),
    ] = None,
    store: Annotated[str | None, typer.Option(help="SQLAlchemy URL to store the run")] = None,
    state: Annotated[
        str | None, typer.Option(help="black-swan state; without it the set's default (ELEVATED)")
    ] = None,
) -> None:
    """Run one book's decisions through the gate; write targets, actions and the run."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with _user_errors():
        if risk_aversion is not None and risk_aversion < 0:
            raise ValidationError("risk_aversion", [f"must be >= 0, got {risk_aversion}"])
        _run(book, decisions, constraints, out, risk_aversion, store, state=_check_state(state))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="folder for book/ and decisions.csv")],
    n: Annotated[int, typer.Option(help="number of names")] = 500,
    k: Annotated[int, typer.Option(help="number of risk factors")] = 10,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    books: Annotated[
        int, typer.Option(help="more than 1: one job folder per book (for riskopt batch)")
    ] = 1,
) -> None:
    """Generate a synthetic book and its decisions (how data/samples was made)."""
    from data.loaders import save_book
    from data.synthetic import make_universe

    with _user_errors():
        if n < 10 or k < 1 or books < 1:
            raise ValidationError("synth", ["need --n >= 10, --k >= 1 and --books >= 1"])
        folders = [out] if books == 1 else [out / f"account{i:04d}" for i in range(books)]
        for i, folder in enumerate(folders):
            universe = make_universe(n, k, seed + i, years=1.0 if books > 1 else 3.0)
            save_book(universe.book, folder / "book")
            universe.decisions.to_csv(folder / "decisions.csv", index=False)
    if books == 1:
        typer.echo(
            f"wrote {out}/book and {out}/decisions.csv ({n} names, {k} factors, seed {seed})"
        )
    else:
        typer.echo(f"wrote {books} job folders under {out}/ ({n} names, {k} factors each)")


@app.command()
def batch(
    jobs: Annotated[
        Path,
        typer.Argument(
            help="a folder of job folders (book/, decisions.csv, optional constraints.toml) "
            "or a CSV manifest (book, decisions, run_id, constraint_set, state, risk_aversion)"
        ),
    ],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("out/batch"),
    scheduler: Annotated[
        str | None, typer.Option(help="a Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    ] = None,
    dask: Annotated[bool, typer.Option("--dask", help="a local Dask cluster")] = False,
    serial: Annotated[bool, typer.Option("--serial", help="in this process, one by one")] = False,
    workers: Annotated[
        int | None, typer.Option(help="processes (or local Dask workers); default: cores")
    ] = None,
    store: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL: each book stored as it finishes")
    ] = None,
    state: Annotated[
        str | None,
        typer.Option(help="state for jobs that name none; without it each set's default"),
    ] = None,
    summaries_only: Annotated[
        bool,
        typer.Option(
            "--summaries-only",
            help="keep only each book's run record in memory (needs --store, where the "
            "tables go); writes summary.csv alone",
        ),
    ] = False,
) -> None:
    """Rebalance many books; a failed book is DEGRADED alone and the batch goes on."""
    from optimizer.batch import jobs_from_manifest, rebalance_many

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    with _user_errors():
        if sum([scheduler is not None, dask, serial]) > 1:
            raise ValidationError("batch", ["choose one of --scheduler, --dask and --serial"])
        if workers is not None and workers < 1:
            raise ValidationError("workers", [f"must be >= 1, got {workers}"])
        if summaries_only and store is None:
            raise ValidationError(
                "summaries-only", ["needs --store: without it the books' tables would be lost"]
            )
        the_state = _check_state(state)
        try:
            job_list = jobs_from_manifest(jobs)
        except (OSError, ValueError, KeyError) as err:
            raise ValidationError("jobs", [str(err)]) from err
        if the_state is not None:
            job_list = [j if j.state else dataclasses.replace(j, state=the_state) for j in job_list]
        executor: object = "serial" if serial else "dask" if dask else None
        client = None
        if scheduler is not None:
            from distributed import Client

            try:
                client = Client(scheduler, timeout="20s")
            except OSError as err:
                raise ValidationError("scheduler", [f"cannot reach {scheduler}: {err}"]) from err
            executor = client
        try:
            result = rebalance_many(
                job_list,
                executor,
                progress=True,
                store=store,
                workers=workers,
                keep="summaries" if summaries_only else "results",
            )
        finally:
            if client is not None:
                client.close()
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    summary.to_csv(out / "summary.csv", index=False)
    written = ["summary.csv"]
    if not summaries_only:
        tables = [r for r in result if isinstance(r, RebalanceResult)]
        pd.concat([r.targets for r in tables], ignore_index=True).to_csv(
            out / "targets.csv", index=False
        )
        pd.concat([r.actions for r in tables], ignore_index=True).to_csv(
            out / "actions.csv", index=False
        )
        written += ["targets.csv", "actions.csv"]
    counts = summary["status"].value_counts()
    typer.echo(
        f"{len(result)} books in {result.seconds:.1f} s ({result.books_per_second:.1f} books/s, "
        f"{result.engine}, {result.workers} workers): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    _echo_states(summary)
    for run_id, error in result.errors.items():
        typer.echo(f"  {run_id}: DEGRADED: {error}")
    typer.echo(f"outputs written to {out}/ ({', '.join(written)})")


def _echo_states(summary: pd.DataFrame) -> None:
    """One line per state the batch's books ran under, with how it was decided."""
    states = summary.groupby(["state", "state_source"], sort=False).size().reset_index(name="n")
    for row in states.itertuples(index=False):
        plural = "" if row.n == 1 else "s"
        described = describe_state(str(row.state), str(row.state_source))
        typer.echo(f"state: {described} for {row.n} book{plural}")


@app.command()
def debate(
    book: Annotated[Path, typer.Option(help="book directory (see README)")],
    decisions: Annotated[Path, typer.Option(help="decisions CSV or Parquet file")],
    constraints: Annotated[
        str, typer.Option(help="constraint set: a TOML path or a shipped name")
    ] = "default",
    rounds: Annotated[int | None, typer.Option(help="rounds of Risky → Safe → Neutral")] = None,
    state: Annotated[
        str | None, typer.Option(help="black-swan state; without it the set's default")
    ] = None,
) -> None:
    """Run the risk debate on a book and print its transcript as a table."""
    from constraints.states import resolve_state
    from data.loaders import load_book, load_decisions
    from optimizer.debate import compute_features, run_debate
    from optimizer.inputs import prepare

    with _user_errors():
        if rounds is not None and not 1 <= rounds <= 10:
            raise ValidationError("rounds", [f"must be between 1 and 10, got {rounds}"])
        the_state = _check_state(state)
        cs = ConstraintSet.load(constraints)
        if rounds is not None:
            cs = cs.replace(**{"debate.max_risk_discuss_rounds": rounds})
        resolved = resolve_state(the_state, cs)
        the_book = load_book(book)
        data = prepare(the_book, load_decisions(decisions), cs).data
        features = compute_features(the_book, data, cs, resolved.state)
        result = run_debate(features, cs.debate, floor=resolved.sop.risk_aversion_floor)
    typer.echo(f"state: {describe_state(resolved.state, resolved.source)}\n")
    table = result.transcript.assign(round=result.transcript["round"].astype(object).fillna("-"))
    with pd.option_context("display.max_colwidth", 110, "display.width", 200):
        typer.echo(table.to_string(index=False, formatters={"risk_aversion": "{:.3g}".format}))
    typer.echo(
        f"\njudge: γ = {result.gamma:.3g}; per-name γ_i from {result.gamma_i.min():.2f} "
        f"to {result.gamma_i.max():.2f} over {len(result.gamma_i)} names"
    )


@app.command()
def regress(
    fixtures_dir: Annotated[
        Path, typer.Option("--fixtures", help="folder of fixed portfolios")
    ] = Path("data/fixtures"),
    update: Annotated[
        bool, typer.Option(help="rewrite the golden outputs instead of comparing")
    ] = False,
    shares_lots: Annotated[float, typer.Option(help="tolerance on target shares, in lots")] = 1.0,
    weight: Annotated[float, typer.Option(help="tolerance on target weights")] = 1e-6,
) -> None:
    """Rerun every fixed portfolio and compare with its golden output (exit 1 on a change)."""
    from optimizer.regression import (
        Tolerances,
        check_fixture,
        fixtures,
        format_differences,
        write_golden,
    )

    with _user_errors():
        if not fixtures_dir.is_dir():
            raise ValidationError("fixtures", [f"not a folder: {fixtures_dir}"])
        found = fixtures(fixtures_dir)
        if not found:
            raise ValidationError(
                "fixtures", [f"no fixture (a folder with fixture.toml) in {fixtures_dir}"]
            )
        changed = 0
        for directory in found:
            if update:
                write_golden(directory)
                typer.echo(f"{directory.name}: golden output rewritten")
                continue
            diff = check_fixture(directory, Tolerances(shares_lots=shares_lots, weight=weight))
            changed += int(not diff.empty)
            typer.echo(format_differences(directory.name, diff))
    if changed:
        typer.echo(f"\n{changed} of {len(found)} fixed portfolio(s) changed")
        raise typer.Exit(1)


db_app = typer.Typer(no_args_is_help=True, help="The runtime database: schema migrations.")
app.add_typer(db_app, name="db")


def _migrate(direction: str, url: str, revision: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from data import migrate

    try:
        getattr(migrate, direction)(url, revision)
    except (SQLAlchemyError, ValueError) as err:
        _fail(f"cannot migrate {url}: {str(err).splitlines()[0]}")
    typer.echo(f"{url}: schema at {revision}")


@db_app.command("init")
def db_init(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
) -> None:
    """Create the schema in an empty database (migrations to head)."""
    db_upgrade(url)


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrate the schema up to ``revision``."""
    _migrate("upgrade", url, revision)


@db_app.command("downgrade")
def db_downgrade(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")],
    revision: Annotated[str, typer.Option(help="target revision")] = "base",
) -> None:
    """Migrate the schema down to ``revision`` (``base`` drops every table)."""
    _migrate("downgrade", url, revision)


@db_app.command("seed-demo")
def db_seed_demo(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
) -> None:
    """Load the sample book, its decisions and the shipped constraint sets into the database."""
    import tomllib

    from constraints.config import SETS_DIR
    from data.database import save_constraint_document, seed_book
    from data.loaders import load_book, load_decisions

    with _user_errors():
        book = load_book(SAMPLES / "book")
        seed_book(url, book, load_decisions(SAMPLES / "decisions.csv"), pipeline_run_id="demo")
        for path in sorted(SETS_DIR.glob("*.toml")):
            save_constraint_document(url, path.stem, tomllib.loads(path.read_text()))
    typer.echo(
        f"{url}: sample book as of {book.as_of}, its decisions (pipeline run 'demo') and the shipped sets"
    )


@app.command()
def report(
    db: Annotated[str, typer.Option("--db", help="SQLAlchemy URL of the runtime database")],
    since: Annotated[str | None, typer.Option(help="first run date (YYYY-MM-DD)")] = None,
    png: Annotated[Path | None, typer.Option(help="write the chart over time here")] = Path(
        "overrides.png"
    ),
) -> None:
    """How often and how strongly the gate overrides each strategy: a table and a chart."""
    from sqlalchemy.exc import SQLAlchemyError

    from optimizer.report import decision_actions, override_table, plot_overrides_over_time

    try:
        if since is not None:
            dt.date.fromisoformat(since)
        actions = decision_actions(db, since)
    except ValueError as err:
        _fail(f"bad --since: {err}")
    except SQLAlchemyError as err:
        _fail(f"cannot read {db}: {str(err).splitlines()[0]}")
    if actions.empty:
        _fail(f"no stored decisions in {db}" + (f" since {since}" if since else ""))
    table = override_table(actions)
    with pd.option_context(
        "display.width", 220, "display.max_colwidth", 80, "display.float_format", "{:.3f}".format
    ):
        typer.echo(table.to_string())
    if png is not None:
        plot_overrides_over_time(actions, save=png)
        typer.echo(f"\nchart written to {png}")


@app.command("check-constraints")
def check_constraints(
    path: Annotated[str, typer.Argument(help="TOML path or shipped name")],
) -> None:
    """Validate a constraint set and print it."""
    with _user_errors():
        cs = ConstraintSet.load(path)
    typer.echo(json.dumps(cs.model_dump(), indent=2))


if __name__ == "__main__":  # pragma: no cover
    app()
