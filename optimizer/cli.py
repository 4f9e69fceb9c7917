"""The ``riskopt`` command line.

Every error a user can cause (a bad path, a bad table, a bad constraint set, an unusable
database) is one clear line on stderr and exit status 2, never a traceback; a run's
status decides the exit status of ``rebalance``, ``demo`` and ``batch``
(:data:`riskopt.optimizer.cli_support.STATUS_EXIT`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from tqdm import tqdm
from typer.core import TyperGroup, TyperOption

from riskopt._version import __version__
from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.states import describe_state
from riskopt.data import SAMPLES
from riskopt.data.errors import ValidationError
from riskopt.optimizer.cli_support import (
    EXIT_CHANGED,
    EXIT_USAGE,
    USER_ERRORS,
    check_store,
    describe,
    exit_code,
    mask_url,
    write_csv,
)
from riskopt.optimizer.logs import LOG_LEVELS, configure, logging_config
from riskopt.optimizer.result import DEGRADED, FALLBACK, RebalanceResult


class _Group(TyperGroup):
    """The command groups: an on/off flag shows no value placeholder in help (``--strict``
    takes no value, so ``--strict <bool>`` misleads), at any level."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _without_flag_placeholders(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _without_flag_placeholders(command.get_params(ctx))
        return command


def _without_flag_placeholders(params: list[Any]) -> list[Any]:
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag:
            param.metavar = ""
    return params


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="riskopt: the convex risk gate.",
    cls=_Group,
)
T = TypeVar("T")
STATE_NAMES = ("NORMAL", "ELEVATED", "EMERGENCY")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"riskopt {__version__}")
        raise typer.Exit()


@dataclasses.dataclass(frozen=True)
class _Output:
    """What the global options say about output: the logging and the progress bars."""

    logging_config: dict[str, Any]
    quiet: bool = False


@app.callback()
def _options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
    log_level: Annotated[
        str, typer.Option(help="what is logged on stderr: DEBUG, INFO, WARNING or ERROR")
    ] = "WARNING",
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", help="no progress bar and no log line below ERROR (over --log-level)"
        ),
    ] = False,
) -> None:
    """Configure logging (``dictConfig``), Dask's loggers included, for every command."""
    if log_level.upper() not in LOG_LEVELS:
        _fail(f"--log-level: must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    config = logging_config("ERROR" if quiet else log_level)
    configure(config)
    ctx.obj = _Output(config, quiet)


def _output(ctx: typer.Context) -> _Output:
    """The global options' output settings (the defaults where no callback ran)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, _Output) else _Output(logging_config())


def _fail(message: str) -> None:
    typer.echo(f"riskopt: error: {message}", err=True)
    raise typer.Exit(EXIT_USAGE)


@contextmanager
def _user_errors() -> Iterator[None]:
    """The one place where an error the user can cause (any ``RiskoptError``, a file or
    database that cannot be used) becomes one line on stderr and exit status 2."""
    try:
        yield
    except USER_ERRORS as err:
        _fail(describe(err))


class _Steps:
    """A progress bar over named steps, shown on stderr (hidden when not a terminal)."""

    def __init__(self, names: list[str], *, quiet: bool = False) -> None:
        self.bar = tqdm(
            total=len(names),
            desc=names[0],
            unit="step",
            file=sys.stderr,
            disable=True if quiet else None,
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


def _write_outputs(
    result: RebalanceResult,
    out: Path,
    *,
    store: str | None,
    table_format: str = "csv",
    book: Path | None = None,
) -> list[str]:
    """Write a run's tables (as ``table_format``), ``run.json`` and ``report.html``; the
    names written."""
    from riskopt.optimizer.explain import ATTRIBUTION, attribution_long
    from riskopt.optimizer.report_html import write_result_report
    from riskopt.optimizer.store import store_result

    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "targets": result.targets,
        "sleeve_targets": result.sleeve_targets,
        "actions": result.actions,
        "binding": result.binding,
        ATTRIBUTION: attribution_long(result.attribution, _lots_moved(result)),  # for explain
    }
    if result.run.status == DEGRADED:
        # No targets at all, not an empty table a downstream system could read as "hold
        # nothing": the book is held, and the rejected decisions say why.
        tables = {"actions": result.actions}
    for name in ("targets", "sleeve_targets", "actions", "binding", ATTRIBUTION):
        for fmt in TABLE_FORMATS:  # no table of a former run left beside this one's
            (out / f"{name}.{fmt}").unlink(missing_ok=True)
    written = [_write_table(t, out, name, table_format) for name, t in tables.items()]
    (out / "run.json").write_text(json.dumps(result.run.to_dict(), indent=2, default=str) + "\n")
    if store is not None:
        store_result(result, store)
    write_result_report(result, out / "report.html", book)  # last: the run is stored first
    return [*written, "run.json", "report.html"]


def _lots_moved(result: RebalanceResult) -> pd.Series | None:
    """What rounding to whole lots moved each name (final − solved weight)."""
    targets = result.targets
    if not {"target_weight", "solved_weight"} <= set(targets.columns):
        return None
    moved = targets["target_weight"] - targets["solved_weight"]
    return pd.Series(moved.to_numpy(dtype=float), index=targets["ticker"].astype(str).to_numpy())


TABLE_FORMATS = ("csv", "parquet")
"""The formats ``--format`` takes for the tables a command writes."""


def _write_table(frame: pd.DataFrame, out: Path, name: str, table_format: str) -> str:
    """Write ``frame`` as ``out/<name>.<table_format>``, without its index; the file's name.
    Parquet keeps every column's type (text, floats, the zoned timestamp) as it is: no
    spreadsheet runs it, so nothing is neutralised."""
    path = out / f"{name}.{table_format}"
    if table_format == "parquet":
        frame.to_parquet(path, index=False)
    else:
        write_csv(frame, path)
    return path.name


def _check_format(table_format: str) -> str:
    """``--format`` in lower case, if it is one of :data:`TABLE_FORMATS`."""
    if table_format.lower() not in TABLE_FORMATS:
        raise ValidationError("format", [f"must be csv or parquet, got {table_format!r}"])
    return table_format.lower()


FORMAT_HELP = "format of the tables written: csv or parquet"


@dataclasses.dataclass(frozen=True)
class _RunOptions:
    """What ``rebalance`` takes beside the book, the decisions and the set."""

    risk_aversion: float | None = None
    state: str | None = None
    run_id: str | None = None
    now: dt.datetime | None = None
    strict: bool = False
    store: str | None = None
    table_format: str = "csv"
    quiet: bool = False


def _run(
    book_dir: Path,
    decisions_file: Path,
    constraints: str,
    out: Path,
    options: _RunOptions,
    drill: bool = False,
) -> RebalanceResult:
    """Run the gate on a book directory and write its outputs; a book that cannot be
    loaded gives the ``DEGRADED`` run (no trade), written and stored like any other."""
    from riskopt.data.loaders import load_decisions
    from riskopt.optimizer.rebalance import rebalance

    def gate(state: str | None, run_id: str | None) -> RebalanceResult:
        return rebalance(
            book_dir,
            decisions,
            cs,
            risk_aversion=options.risk_aversion,
            state=state,
            run_id=run_id,
            now=options.now,
            strict=options.strict,
        )

    steps = _Steps(["load inputs", "risk gate", "write outputs"], quiet=options.quiet)
    try:
        decisions = steps.run(0, lambda: load_decisions(decisions_file))
        cs = ConstraintSet.load(constraints)
        result = steps.run(1, lambda: gate(options.state, options.run_id))
        written = steps.run(
            2,
            lambda: _write_outputs(
                result, out, store=options.store, table_format=options.table_format, book=book_dir
            ),
        )
        others = {}
        if drill and options.state not in (None, "NORMAL"):
            others = {s: gate(s, None) for s in STATE_NAMES if s != options.state}
    finally:
        steps.close()
    typer.echo(result.summary())
    if others:
        _echo_drill({**others, str(options.state): result})
    typer.echo(
        f"\noutputs written to {out}/ ({', '.join(written)}"
        + (f"; run stored in {mask_url(options.store)})" if options.store else ")")
    )
    return result


def _echo_drill(runs: dict[str, RebalanceResult]) -> None:
    """The emergency drill: exposures and label counts of the same decisions per state."""
    typer.echo("\nemergency drill: the same decisions under each state")
    typer.echo(f"{'':<12}" + "".join(f"{s:>12}" for s in STATE_NAMES))
    for key in ("gross", "net", "long", "short", "volatility"):
        cells = "".join(
            f"{runs[s].run.exposures_after.get(key, float('nan')):>12.2%}" for s in STATE_NAMES
        )
        typer.echo(f"{key:<12}{cells}")
    for label in ("OK", "SCALED_DOWN", "CAPPED", "REJECTED"):
        cells = "".join(f"{int(runs[s].label_counts()[label]):>12}" for s in STATE_NAMES)
        typer.echo(f"{label:<12}{cells}")


def _check_state(state: str | None) -> str | None:
    if state is None:
        return None
    if state.upper() not in ("NORMAL", "ELEVATED", "EMERGENCY"):
        raise ValidationError("state", [f"must be NORMAL, ELEVATED or EMERGENCY, got {state!r}"])
    return state.upper()


@app.command()
def demo(
    ctx: typer.Context,
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
    table_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "csv",
) -> None:
    """Run the shipped sample book through the gate and print a summary.

    The demo shows the calm state unless told otherwise: it passes NORMAL itself,
    where rebalance without a state takes the set's default.

    Under --state ELEVATED or EMERGENCY the summary ends with the drill: the same
    decisions under every state, side by side.
    """
    with _user_errors():
        out.mkdir(parents=True, exist_ok=True)
        options = _RunOptions(
            risk_aversion=risk_aversion,
            state=_check_state(state),
            store=f"sqlite:///{out / 'riskopt.sqlite'}",
            table_format=_check_format(table_format),
            quiet=_output(ctx).quiet,
        )
        result = _run(SAMPLES / "book", SAMPLES / "decisions.csv", constraints, out, options, True)
    raise typer.Exit(exit_code([result.run.status]))


@app.command("rebalance")
def rebalance_cmd(
    ctx: typer.Context,
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
    run_id: Annotated[
        str | None,
        typer.Option(help="the run's id: a retry with the same id is stored once"),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            help="the run's clock for the state's staleness, ISO time with an offset "
            "(2026-11-20T16:00:00+00:00); default: the current time"
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="a constraint set that does not fit the book is an error (exit 2) "
            "instead of the conservative fallback (DEGRADED)",
        ),
    ] = False,
    table_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "csv",
) -> None:
    """Run one book's decisions through the gate; write targets, actions and the run.

    Exit status: 0 OPTIMAL or RELAXED, 3 FALLBACK, 4 DEGRADED, 2 a usage or input error.
    """
    with _user_errors():
        if risk_aversion is not None and risk_aversion < 0:
            raise ValidationError("risk_aversion", [f"must be >= 0, got {risk_aversion}"])
        if not book.is_dir():
            # A typo, not a broken book: nothing to run (a broken book runs DEGRADED).
            raise ValidationError("book", [f"not a directory: {book}"])
        if run_id is not None and not run_id.strip():
            raise ValidationError("run-id", ["must not be empty"])
        options = _RunOptions(
            risk_aversion=risk_aversion,
            state=_check_state(state),
            run_id=run_id,
            now=_check_now(now),
            strict=strict,
            store=None if store is None else check_store(store),
            table_format=_check_format(table_format),
            quiet=_output(ctx).quiet,
        )
        out.mkdir(parents=True, exist_ok=True)
        result = _run(book, decisions, constraints, out, options)
    raise typer.Exit(exit_code([result.run.status]))


def _check_now(now: str | None) -> dt.datetime | None:
    """``--now`` as an aware time; a time without an offset would be ambiguous."""
    if now is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(now)
    except ValueError:
        raise ValidationError("now", [f"not an ISO time: {now!r}"]) from None
    if moment.tzinfo is None:
        raise ValidationError(
            "now", [f"needs an offset, e.g. {now}+00:00 (a time without one is ambiguous)"]
        )
    return moment


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
    from riskopt.data.loaders import save_book
    from riskopt.data.synthetic import make_universe

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
    ctx: typer.Context,
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
    table_format: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "csv",
    reports: Annotated[
        bool,
        typer.Option(
            help="write each book's report.html and the batch's index.html (about a "
            "second a book, drawn by --workers processes)"
        ),
    ] = True,
) -> None:
    """Rebalance many books; a failed book is DEGRADED alone and the batch goes on.

    Exit status: the worst book's (0 OPTIMAL or RELAXED, 3 FALLBACK, 4 DEGRADED); 2 when
    the batch cannot start (a bad option, manifest, output folder or store).
    """
    with _user_errors():
        _check_batch_options(scheduler, dask, serial, workers, store, summaries_only)
        table_format = _check_format(table_format)
        job_list = _batch_jobs(jobs, _check_state(state), store)
        out.mkdir(parents=True, exist_ok=True)
        executor: object = "serial" if serial else "dask" if dask else None
        result = _run_batch(
            job_list, executor, scheduler, store, workers, summaries_only, _output(ctx)
        )
        written = _write_batch(result, out, summaries_only, table_format)
        if reports and not summaries_only:
            written += _write_batch_reports(result, job_list, out, 1 if serial else workers)
    summary = result.summary()
    _echo_batch(result, summary)
    typer.echo(f"outputs written to {out}/ ({', '.join(written)})")
    raise typer.Exit(exit_code(list(summary["status"])))


def _check_batch_options(
    scheduler: str | None,
    dask: bool,
    serial: bool,
    workers: int | None,
    store: str | None,
    summaries_only: bool,
) -> None:
    """The batch's options that cannot go together, as a ValidationError (a usage error)."""
    if sum([scheduler is not None, dask, serial]) > 1:
        raise ValidationError("batch", ["choose one of --scheduler, --dask and --serial"])
    if workers is not None and workers < 1:
        raise ValidationError("workers", [f"must be >= 1, got {workers}"])
    if summaries_only and store is None:
        raise ValidationError(
            "summaries-only", ["needs --store: without it the books' tables would be lost"]
        )


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1: "1 worker", "4 workers"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _echo_batch(result: Any, summary: pd.DataFrame) -> None:
    """How the batch went: books, time, engine and statuses, then each failed book."""
    counts = summary["status"].value_counts()
    typer.echo(
        f"{_count(len(result), 'book')} in {result.seconds:.1f} s "
        f"({result.books_per_second:.1f} books/s, {result.engine}, "
        f"{_count(result.workers, 'worker')}): " + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    _echo_states(summary)
    failed = summary[summary["status"].isin([DEGRADED, FALLBACK])]
    for run_id, status, error in zip(
        failed["run_id"], failed["status"], failed["error"], strict=True
    ):
        typer.echo(f"  {run_id}: {status}: {error}")


def _batch_jobs(jobs: Path, state: str | None, store: str | None) -> list[Any]:
    """The batch's jobs, ``state`` given to those that name none; the store checked first."""
    from riskopt.optimizer.batch import jobs_from_manifest

    if store is not None:
        check_store(store)
    try:
        job_list = jobs_from_manifest(jobs)
    except (ValueError, KeyError) as err:
        raise ValidationError("jobs", [str(err)]) from err
    if state is None:
        return job_list
    return [j if j.state else dataclasses.replace(j, state=state) for j in job_list]


def _run_batch(
    job_list: list[Any],
    executor: object,
    scheduler: str | None,
    store: str | None,
    workers: int | None,
    summaries_only: bool,
    output: _Output | None = None,
) -> Any:
    """Run the jobs on the chosen engine (a Dask scheduler's address connects here), logging
    as ``output`` says in the processes started here."""
    output = output or _Output(logging_config())
    from riskopt.optimizer.batch import rebalance_many

    client = None
    if scheduler is not None:
        from distributed import Client

        try:
            client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise ValidationError("scheduler", [f"cannot reach {scheduler}: {err}"]) from err
        executor = client
    try:
        return rebalance_many(
            job_list,
            executor,
            progress=not output.quiet,
            store=store,
            workers=workers,
            keep="summaries" if summaries_only else "results",
            logging_config=output.logging_config,
        )
    finally:
        if client is not None:
            client.close()


def _write_batch(
    result: Any, out: Path, summaries_only: bool, table_format: str = "csv"
) -> list[str]:
    """Write the batch's tables into ``out``; the names of the files written."""
    written = [_write_table(result.summary(), out, "summary", table_format)]
    if summaries_only:
        return written
    tables = [r for r in result if isinstance(r, RebalanceResult)]
    for name in ("targets", "actions"):
        frame = pd.concat([getattr(r, name) for r in tables], ignore_index=True)
        written.append(_write_table(frame, out, name, table_format))
    return written


def _write_batch_reports(
    result: Any, job_list: list[Any], out: Path, workers: int | None
) -> list[str]:
    """Each book's HTML report in its own folder and the batch's ``index.html``."""
    from riskopt.optimizer.report_html import write_batch_reports

    write_batch_reports(result.results, [j.book for j in job_list], out, workers=workers)
    return ["index.html", "<run id>/report.html"]


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
    from riskopt.constraints.states import resolve_state
    from riskopt.data.loaders import load_book, load_decisions
    from riskopt.optimizer.debate import compute_features, run_debate
    from riskopt.optimizer.inputs import prepare

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
    from riskopt.optimizer.regression import (
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
        raise typer.Exit(EXIT_CHANGED)


db_app = typer.Typer(
    no_args_is_help=True, help="The runtime database: schema migrations.", cls=_Group
)
app.add_typer(db_app, name="db")


def _migrate(direction: str, url: str, revision: str, *, create: bool = False) -> None:
    """Migrate ``url`` up or down; only ``db init`` (``create``) makes a database that
    does not exist, every other command says it is missing."""
    from alembic.util import CommandError

    from riskopt.data import migrate

    with _user_errors():
        check_store(url, must_exist=not create)
        try:
            if direction == "upgrade":
                migrate.upgrade(url, revision, create=create)
            else:
                migrate.downgrade(url, revision)
        except (CommandError, ValueError) as err:
            raise ValidationError("revision", [f"cannot migrate {mask_url(url)}: {err}"]) from err
    typer.echo(f"{mask_url(url)}: schema at {revision}")


@db_app.command("init")
def db_init(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
) -> None:
    """Create the database if need be, and its schema (migrations to head)."""
    _migrate("upgrade", url, "head", create=True)


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrate the schema up to --revision (head, the latest, unless given)."""
    _migrate("upgrade", url, revision)


@db_app.command("downgrade")
def db_downgrade(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")],
    revision: Annotated[str, typer.Option(help="target revision")] = "base",
) -> None:
    """Migrate the schema down to --revision (base, unless given, drops every table)."""
    _migrate("downgrade", url, revision)


@db_app.command("seed-demo")
def db_seed_demo(
    url: Annotated[str, typer.Option(help="SQLAlchemy URL")] = "sqlite:///riskopt.sqlite",
) -> None:
    """Load the sample book, its decisions and the shipped constraint sets into the database."""
    from riskopt.constraints.config import SETS_DIR
    from riskopt.data.config_files import read_toml
    from riskopt.data.database import save_constraint_document, seed_book
    from riskopt.data.loaders import load_book, load_decisions

    with _user_errors():
        check_store(url)
        book = load_book(SAMPLES / "book")
        seed_book(url, book, load_decisions(SAMPLES / "decisions.csv"), pipeline_run_id="demo")
        for path in sorted(SETS_DIR.glob("*.toml")):
            save_constraint_document(url, path.stem, read_toml(path))
    typer.echo(
        f"{mask_url(url)}: sample book as of {book.as_of}, its decisions (pipeline run 'demo') "
        "and the shipped sets"
    )


@app.command()
def report(
    db: Annotated[str, typer.Option("--db", help="SQLAlchemy URL of the runtime database")],
    since: Annotated[str | None, typer.Option(help="first run date (YYYY-MM-DD)")] = None,
    png: Annotated[Path | None, typer.Option(help="write the chart over time here")] = Path(
        "overrides.png"
    ),
    run: Annotated[
        str | None,
        typer.Option("--run", help="one stored run: write its HTML report instead (see --html)"),
    ] = None,
    html: Annotated[Path, typer.Option(help="with --run: where the run's HTML report goes")] = Path(
        "report.html"
    ),
) -> None:
    """How often and how strongly the gate overrides each strategy: a table and a chart.

    With --run RUN_ID, the HTML report of that one stored run instead (as rebalance
    writes beside its outputs).
    """
    from riskopt.optimizer.report import decision_actions, override_table, plot_overrides_over_time

    if run is not None:
        _run_report(db, run, html, since)
        return
    with _user_errors():
        if since is not None:
            try:
                dt.date.fromisoformat(since)
            except ValueError as err:
                raise ValidationError("since", [str(err)]) from None
        check_store(db, must_exist=True)
        actions = decision_actions(db, since)
        if actions.empty:
            _fail(f"no stored decisions in {mask_url(db)}" + (f" since {since}" if since else ""))
        table = override_table(actions)
        with pd.option_context(
            "display.width",
            220,
            "display.max_colwidth",
            80,
            "display.float_format",
            "{:.3f}".format,
        ):
            typer.echo(table.to_string())
        if png is not None:
            plot_overrides_over_time(actions, save=png)
            typer.echo(f"\nchart written to {png}")


def _run_report(db: str, run_id: str, html: Path, since: str | None) -> None:
    """``report --run``: one stored run's HTML report, with the book of its date where the
    database holds it."""
    from riskopt.optimizer.report_html import stored_report, write_report

    with _user_errors():
        if since is not None:
            raise ValidationError("since", ["applies to the history report, not to --run"])
        check_store(db, must_exist=True)
        path = write_report(stored_report(db, run_id), html)
    typer.echo(f"report of run {run_id} written to {path}")


@app.command("check-constraints")
def check_constraints(
    path: Annotated[str, typer.Argument(help="TOML path or shipped name")],
    state: Annotated[
        str | None,
        typer.Option(help="print the set as this state's SOP tightens it (before drawdown)"),
    ] = None,
) -> None:
    """Validate a constraint set and print it as TOML, every default filled in.

    The TOML printed loads to the same set."""
    from riskopt.constraints.states import resolve_state, tightened

    with _user_errors():
        the_state = _check_state(state)
        cs = ConstraintSet.load(path)
        if the_state is not None:
            cs = tightened(cs, resolve_state(the_state, cs))
        text = cs.to_toml()
    typer.echo(text, nl=False)


@app.command("explain")
def explain_cmd(
    run: Annotated[
        str, typer.Argument(help="a run's output folder, or a stored run's id with --db")
    ],
    ticker: Annotated[str, typer.Argument(help="the name to explain")],
    db: Annotated[
        str | None, typer.Option("--db", help="SQLAlchemy URL of the runtime database")
    ] = None,
    chart: Annotated[
        Path | None, typer.Option(help="write the name's waterfall chart (PNG) here")
    ] = None,
) -> None:
    """Why did a name end where it did: held → proposed → final, and each cause's part."""
    from riskopt.optimizer.explain import explain, read_folder, read_stored

    with _user_errors():
        if db is not None:
            tables = read_stored(check_store(db, must_exist=True), run, ticker)
        else:
            tables = read_folder(Path(run))
        explanation = explain(tables, ticker)
        typer.echo(explanation.text)
        if chart is not None:
            explanation.plot().savefig(chart, dpi=110)
            typer.echo(f"\nchart written to {chart}")


if __name__ == "__main__":  # pragma: no cover
    app()
