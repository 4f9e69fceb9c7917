"""Many books in one call: accounts, sleeves or scenarios, each through its own gate.

    results = rebalance_many(jobs)                        # a local process pool
    results = rebalance_many(jobs, executor="serial")     # in this process
    results = rebalance_many(jobs, executor=my_pool)      # any concurrent.futures.Executor
    results = rebalance_many(jobs, executor=client)       # a dask.distributed Client
    results = rebalance_many(jobs, executor="dask")       # a LocalCluster, one worker per core

Each book is isolated. Whatever goes wrong with one (a book that cannot be loaded, bad
tables, a job that cannot be pickled to its worker, an exception anywhere in its gate)
gives that book its own ``DEGRADED`` result
(no new risk: every decision ``REJECTED``, naming the error); solver failures already give
``FALLBACK`` inside :func:`~riskopt.optimizer.rebalance.rebalance`. The batch always finishes with
one result per job, in job order.

With ``store``, every book is written by the worker that ran it, one transaction per book,
as soon as it is done: a batch stopped half-way leaves the finished books stored whole and
the others absent (re-running the batch with the same run ids stores only the missing).

Choices made:

* One task per book on a local pool: a 300-name book pickles to about 100 kB and its
  result to about 550 kB (1.4 ms and 1.5 ms through pickle and back; a summary, 1 kB),
  small next to its 0.03–0.04 s of work, and per-book tasks give a live progress bar
  (tasks of eight books changed neither the parent's share of the time nor the wall).
  On Dask, a few books per task (about eight tasks per worker, at most 16 books each)
  spare the scheduler; each book is still isolated inside its task. The books are
  scattered straight to the workers, four tasks per worker ahead of them, rather than
  sent inside the task graph: the scheduler then never unpickles a book, and a batch of
  any size holds only those tasks' books on the cluster. A task's books, and its
  results, cross as one pickle (:func:`run_pickled_jobs`).
* Every job of a batch shares one clock (``now``), so a state's staleness is judged the
  same way on every worker, and run ids default to ``<batch>-<index>``: the serial, pool
  and Dask runs of one batch give identical results.
* A process pool is the default: the gate is CPU-bound Python plus a single-threaded
  solver, so threads would serialize on the GIL.
* A worker process that dies (killed for memory, a crash in native code) breaks a
  ``ProcessPoolExecutor``. Every book the broken pool left unfinished (the pool this call
  starts, or one you pass in) is then run again in a process of its own, so only the book
  that kills its process fails. Dask retries a task whose worker died on another worker and, past its
  ``allowed-failures``, fails that task; its books are then run again one per task, so
  only the book that kills workers fails: the cluster engine isolates even crashes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import functools
import io
import logging
import os
import pickle
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from riskopt.constraints.config import ConstraintSet
from riskopt.constraints.states import BlackSwanState
from riskopt.data.book import Book
from riskopt.data.config_files import read_config_text
from riskopt.data.contracts import DECISION_COLUMNS, DecisionsInput, check_decision_columns
from riskopt.optimizer.fallback import error_line
from riskopt.optimizer.logs import configure, worker_plugin
from riskopt.optimizer.rebalance import degraded_result, rebalance, rebalance_summary
from riskopt.optimizer.result import DEGRADED, FALLBACK, BookSummary, RebalanceResult

log = logging.getLogger("riskopt")

KEEP = ("results", "summaries")
SCATTER_WAIT = 2.0
"""Seconds a Dask round waits for a running worker to scatter its books to; past it
the books ride inside their tasks (which wait for a worker, and make an adaptive cluster
start one)."""


@dataclass(frozen=True)
class Job:
    """One book to rebalance: the arguments of :func:`~riskopt.optimizer.rebalance.rebalance`.

    ``book`` and ``decisions`` may be paths (a book directory, a CSV/Parquet file): they
    are then read by the worker, so nothing large crosses the wire.
    """

    book: Book | str | Path
    decisions: DecisionsInput
    constraint_set: ConstraintSet | str | Path = "default"
    run_id: str | None = None
    state: str | BlackSwanState | None = None
    risk_aversion: float | None = None
    name_risk_aversion: float | Mapping[str, float] | np.ndarray | None = None


Outcome = RebalanceResult | BookSummary


@dataclass
class BatchResult:
    """One result per job, in job order, and how the batch went.

    Each item of ``results`` is a :class:`~riskopt.optimizer.result.RebalanceResult`, or a
    :class:`BookSummary` when the batch ran with ``keep="summaries"``; both have ``.run``.
    """

    results: list[Outcome]
    seconds: float
    engine: str
    workers: int
    errors: dict[str, str] = field(default_factory=dict)
    """Run id → the error that made that book ``DEGRADED`` (isolated failures)."""

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Any:
        return iter(self.results)

    def __getitem__(self, index: int) -> Outcome:
        return self.results[index]

    @property
    def failed(self) -> list[Outcome]:
        """Books that ended ``FALLBACK`` or ``DEGRADED``."""
        return [r for r in self.results if r.run.status in (FALLBACK, DEGRADED)]

    @property
    def books_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> pd.DataFrame:
        """One row per book: status, labels, exposures after, the gate's own time."""
        rows = []
        for r in self.results:
            run = r.run
            rows.append(
                {
                    "run_id": run.run_id,
                    "status": run.status,
                    "state": run.state,
                    "state_source": run.state_source,
                    "names": r.names if isinstance(r, BookSummary) else len(r.targets),
                    **{label: int(n) for label, n in r.run.counts.items()},
                    "gross_after": run.exposures_after.get("gross", np.nan),
                    "net_after": run.exposures_after.get("net", np.nan),
                    "seconds": run.timings.get("total", np.nan),
                    "error": self.errors.get(run.run_id) or _degraded_reason(run),
                }
            )
        return pd.DataFrame(rows)


def _degraded_reason(run: Any) -> str:
    """Why a book that did not raise ended ``DEGRADED`` (its alerts), else nothing."""
    return "; ".join(run.alerts) if run.status == DEGRADED else ""


def run_job(
    job: Job, store: str | None = None, now: dt.datetime | None = None, keep: str = "results"
) -> Outcome:
    """Rebalance one job; never raises (the batch's unit of isolation). With
    ``keep="summaries"`` only its :class:`BookSummary` comes back, and without a store
    its tables are never written (:func:`~riskopt.optimizer.rebalance.rebalance_summary`)."""
    try:
        decisions = _decisions(job.decisions)
        options: dict[str, Any] = {
            "state": job.state,
            "risk_aversion": job.risk_aversion,
            "name_risk_aversion": job.name_risk_aversion,
            "run_id": job.run_id,
            "now": now,
        }
        if keep == "summaries" and store is None:
            return rebalance_summary(job.book, decisions, job.constraint_set, **options)
        result = rebalance(job.book, decisions, job.constraint_set, store=store, **options)
    except Exception as err:  # one book's failure must not stop the batch
        result = failed_result(job, err, store=store)
    return _kept(result, keep)


def _kept(result: RebalanceResult, keep: str) -> Outcome:
    """What a batch keeps of a book's result (see ``keep`` of :func:`rebalance_many`)."""
    return BookSummary.of(result) if keep == "summaries" else result


def failed_result(job: Job, err: BaseException, *, store: str | None = None) -> RebalanceResult:
    """The ``DEGRADED`` result of a book whose gate raised: no new risk, reason given."""
    reason = f"book failed ({type(err).__name__}: {error_line(err)})"
    try:
        decisions = check_decision_columns(_decisions(job.decisions))
    except Exception:
        # The decisions themselves are what is broken: no row can be labelled.
        decisions = pd.DataFrame(columns=[*DECISION_COLUMNS, "confidence"])
    from riskopt.data.loaders import book_date

    as_of = job.book.as_of if isinstance(job.book, Book) else book_date(job.book)
    try:
        return degraded_result(
            decisions, reason, run_id=job.run_id, store=store, as_of=as_of, error=err
        )
    except Exception as store_err:  # e.g. the database is down as well
        return degraded_result(
            decisions,
            f"{reason}; not stored ({type(store_err).__name__}: {error_line(store_err)})",
            run_id=job.run_id,
            as_of=as_of,
            error=err,
        )


def rebalance_many(
    jobs: Iterable[Job],
    executor: Executor | Any | str | None = None,
    progress: bool = True,
    *,
    store: str | None = None,
    workers: int | None = None,
    now: dt.datetime | None = None,
    batch_id: str | None = None,
    keep: str = "results",
    logging_config: dict[str, Any] | None = None,
) -> BatchResult:
    """Rebalance every job; one failed book never stops the others.

    Parameters
    ----------
    jobs
        :class:`Job` objects.
    executor
        ``None`` or ``"processes"``: a local process pool of ``workers`` processes (default
        one per core). ``"serial"``: in this process. ``"dask"``: a ``LocalCluster`` of
        ``workers`` single-threaded worker processes, started and closed here. A
        ``concurrent.futures.Executor`` or a ``dask.distributed.Client``: used as given,
        left open.
    progress
        A tqdm bar on stderr: books done, failures and the rate.
    store
        SQLAlchemy URL: each book is written by its worker in its own transaction.
    workers
        Size of the pool or cluster this call starts (default: the machine's cores).
    now
        The batch's clock for state staleness (default: now, taken once).
    batch_id
        Prefix of the default run ids ``<batch_id>-<index>`` (default: random).
    keep
        ``"results"``: every book's :class:`~riskopt.optimizer.result.RebalanceResult`, tables
        and all. ``"summaries"``: only its :class:`BookSummary`, so that tens of thousands
        of accounts fit in memory; pair it with ``store``, where every book's tables are
        written by its worker. Without a store no table is written at all
        (:func:`~riskopt.optimizer.rebalance.rebalance_summary`): a sweep's mode, about a
        quarter less time per book.
    logging_config
        A ``logging.config.dictConfig`` dictionary
        (:func:`~riskopt.optimizer.logs.logging_config`), applied in this process and in
        every worker process this call starts (its pool or ``LocalCluster``), Dask's
        ``distributed`` loggers included. ``None``: logging is left as it is.
    """
    job_list = _checked_jobs(jobs, keep, batch_id)
    now = now or dt.datetime.now(dt.UTC)
    if store is not None:
        from riskopt.data.storage import engine_for

        # Bring the schema to head once, here, rather than racing from every worker.
        engine_for(store).dispose()
    workers = max(1, workers or os.cpu_count() or 1)
    configure(logging_config)
    start = time.perf_counter()
    tally = _Tally(job_list, store, keep, progress)
    try:
        # This process's log lines go above the bar rather than through it.
        with logging_redirect_tqdm(tqdm_class=tqdm) if progress else contextlib.nullcontext():
            engine, workers = _run_on(
                executor, job_list, tally, store, now, keep, workers, logging_config
            )
    finally:
        tally.bar.close()
    seconds = time.perf_counter() - start
    log.info("%d books in %.1f s on %s, %d failed", len(job_list), seconds, engine, tally.failures)
    return BatchResult(
        results=tally.finished(),
        seconds=seconds,
        engine=engine,
        workers=workers,
        errors=tally.errors,
    )


def _checked_jobs(jobs: Iterable[Job], keep: str, batch_id: str | None) -> list[Job]:
    """The jobs as a list, each with a run id (``<batch_id>-<index>`` by default), unique;
    a bad ``keep`` or a non-:class:`Job` item is an error."""
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    job_list = list(jobs)
    bad = [i for i, job in enumerate(job_list) if not isinstance(job, Job)]
    if bad:
        raise TypeError(f"rebalance_many takes Job objects; items {bad[:5]} are not")
    batch_id = batch_id or uuid.uuid4().hex[:8]
    job_list = [
        job if job.run_id else replace(job, run_id=f"{batch_id}-{i:05d}")
        for i, job in enumerate(job_list)
    ]
    run_ids = [str(job.run_id) for job in job_list]
    if len(set(run_ids)) != len(run_ids):
        dupes = sorted({r for r in run_ids if run_ids.count(r) > 1})
        raise ValueError(f"run ids must be unique within a batch: {dupes[:5]}")
    return job_list


class _Tally:
    """A batch's results as they come in, its errors, and its progress bar."""

    def __init__(self, jobs: list[Job], store: str | None, keep: str, progress: bool) -> None:
        self.jobs, self.store, self.keep = jobs, store, keep
        self.results: list[Outcome | None] = [None] * len(jobs)
        self.errors: dict[str, str] = {}
        self.failures = 0
        self.bar = tqdm(
            total=len(jobs), unit="book", desc="rebalance", disable=not progress, file=sys.stderr
        )

    def done(self, index: int, result: Outcome) -> None:
        """Book ``index`` finished with ``result``."""
        self.results[index] = result
        if result.run.status in (FALLBACK, DEGRADED):
            self.failures += 1
            if result.run.error is not None:
                self.errors[result.run.run_id] = result.run.error
        self.bar.update(1)
        self.bar.set_postfix(failed=self.failures, refresh=False)
        log.debug(
            "book %s: %s (%d of %d)",
            result.run.run_id,
            result.run.status,
            self.bar.n,
            len(self.jobs),
        )

    def lost(self, index: int, err: BaseException) -> None:
        """The task itself failed (a dead worker, an unpicklable job)."""
        result = failed_result(self.jobs[index], err, store=self.store)
        self.done(index, _kept(result, self.keep))

    def finished(self) -> list[Outcome]:
        """Every book's outcome, in job order."""
        assert all(r is not None for r in self.results)
        return [r for r in self.results if r is not None]


def _run_on(
    executor: Executor | Any | str | None,
    jobs: list[Job],
    tally: _Tally,
    store: str | None,
    now: dt.datetime,
    keep: str,
    workers: int,
    logging_config: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """Run every job on ``executor`` (see :func:`rebalance_many`); returns the engine's
    name and its number of workers. The pool or cluster started here logs as
    ``logging_config`` says."""
    # What every task runs: one book, or (on Dask) a few, with the batch's settings.
    one = functools.partial(run_job, store=store, now=now, keep=keep)
    few = functools.partial(run_pickled_jobs, store=store, now=now, keep=keep)
    done, lost = tally.done, tally.lost
    if executor == "serial":
        for i, job in enumerate(jobs):
            done(i, one(job))
        return "serial", 1
    if executor is None or executor == "processes":
        with ProcessPoolExecutor(
            max_workers=min(workers, max(1, len(jobs))),
            initializer=configure,
            initargs=(logging_config,),
        ) as pool:
            broken = _drain(pool.submit, one, jobs, done, lost)
        _alone(broken, one, jobs, done, lost)
        return "processes", workers
    if executor == "dask":
        from distributed import Client

        # Importing distributed sets its loggers' levels (INFO): the batch's come after.
        configure(logging_config)
        with local_cluster(workers) as cluster, Client(cluster) as client:
            if logging_config is not None:
                client.register_plugin(worker_plugin(logging_config))
            _drain_dask(client, few, jobs, done, lost, _chunk(len(jobs), workers), 4 * workers)
        return "dask LocalCluster", workers
    if _is_dask_client(executor):
        dask_client: Any = executor
        workers = len(dask_client.scheduler_info().get("workers", {})) or workers
        _drain_dask(executor, few, jobs, done, lost, _chunk(len(jobs), workers), 4 * workers)
        return "dask", workers
    if isinstance(executor, Executor):
        workers = int(getattr(executor, "_max_workers", workers))
        _alone(_drain(executor.submit, one, jobs, done, lost), one, jobs, done, lost)
        return type(executor).__name__, workers
    raise TypeError(
        "executor must be None, 'serial', 'processes', 'dask', a "
        f"concurrent.futures.Executor or a dask.distributed Client, got {executor!r}"
    )


QUIET_WORKERS: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}
"""Dask settings of the workers :func:`local_cluster` starts: no statistical profiler,
and slower tick and system monitors, whose wake-ups would stall a book's Python for the
GIL (measured in ``benchmarks/README.md``, "Quiet Dask workers"). A cluster of your own
can take them too: ``with dask.config.set(QUIET_WORKERS): cluster = LocalCluster(...)``,
or, for workers started from a shell, ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``,
``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=1s`` and
``DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL=5s`` in their environment."""


def local_cluster(workers: int | None = None) -> Any:
    """A Dask ``LocalCluster`` as ``rebalance_many(executor="dask")`` starts one: ``workers``
    single-threaded worker processes (default: one per core), no dashboard (the
    scheduler's own HTTP routes on a free loopback port, so several clusters can run on
    one host), and the :data:`QUIET_WORKERS` settings.

    Its workers keep glibc's default memory trimming: Dask's nannies otherwise start them
    with ``MALLOC_TRIM_THRESHOLD_=65536``, which hands memory back eagerly, and the gate,
    which allocates many small arrays per book, ran about 10% slower so. To keep a cluster
    up across batches::

        with local_cluster(2) as cluster, Client(cluster) as client:
            for jobs in batches:
                rebalance_many(jobs, client)
    """
    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    # A nanny writes its settings into this process's environment before it spawns a
    # worker, and leaves them there: after any default cluster, every later worker would
    # inherit the variable. It is kept out of the environment while these workers start.
    inherited = os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ, **QUIET_WORKERS}):
            return LocalCluster(
                n_workers=max(1, workers or os.cpu_count() or 1),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                # The scheduler serves its health and metrics routes even without a
                # dashboard, on port 8787 by default: a second cluster on the host then
                # warns and moves. Any free loopback port, from the start.
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            )
    finally:
        if inherited is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = inherited


def _drain(
    submit: Callable[..., Future[Outcome]],
    task: Callable[[Job], Outcome],
    jobs: Sequence[Job],
    done: Callable[[int, Outcome], None],
    lost: Callable[[int, BaseException], None],
) -> list[tuple[int, BaseException]]:
    """Run every job through ``submit``; returns the books whose executor broke (a worker
    process died and took the pool with it), with that error, for :func:`_alone`."""
    broken: list[tuple[int, BaseException]] = []

    def failed(index: int, err: BaseException) -> None:
        if isinstance(err, BrokenExecutor):
            broken.append((index, err))
        else:
            lost(index, err)

    futures: dict[Future[Outcome], int] = {}
    for i, job in enumerate(jobs):
        try:
            futures[submit(task, job)] = i
        except Exception as err:  # e.g. a pool already broken
            failed(i, err)
    for future in as_completed(futures):
        index = futures[future]
        try:
            result = future.result()
        except Exception as err:  # the task failed, not the gate: a dead worker, pickling
            failed(index, err)
        else:
            done(index, result)
    return broken


def run_jobs(
    jobs: Sequence[Job],
    store: str | None = None,
    now: dt.datetime | None = None,
    keep: str = "results",
) -> list[Outcome]:
    """:func:`run_job` over a few jobs: one cluster task, each book still isolated."""
    return [run_job(job, store, now, keep) for job in jobs]


def run_pickled_jobs(
    jobs: bytes,
    store: str | None = None,
    now: dt.datetime | None = None,
    keep: str = "results",
) -> bytes:
    """:func:`run_jobs` on a pickled list of jobs, its results pickled: a Dask task.

    Dask would serialize a list of jobs item by item, and each book's and result's frames
    one by one, on the client's event loop, which shares the cores with the workers; one
    ``pickle`` of the whole list each way costs it less (``benchmarks/README.md``, "One
    pickle per Dask task")."""
    return _pickled(run_jobs(pickle.loads(jobs), store, now, keep))


def _drain_dask(
    client: Any,
    task: Callable[[bytes], bytes],
    jobs: Sequence[Job],
    done: Callable[[int, Outcome], None],
    lost: Callable[[int, BaseException], None],
    chunk: int = 1,
    ahead: int = 8,
) -> None:
    """Run ``chunk`` books per task (fewer, larger tasks cost the scheduler less), at most
    ``ahead`` tasks at a time.

    The books go straight to the workers (``client.scatter``), a few tasks ahead of
    them: the scheduler never unpickles a book (it did a batch's worth at once when the
    books rode in the task graph, about 20 MB per 200 books and a fifth of the client
    process's time), and the workers never hold more than ``ahead`` tasks of books. A
    round that cannot be scattered (no worker is up yet: an adaptive cluster scales up
    only for tasks it sees waiting) carries its books inside its tasks instead.

    A task that fails as a whole (its worker died, taking the task or the books
    scattered to it) has its books re-run one per task, in order, so that only the book
    that kills its worker fails. So do the books of a task that cannot be pickled (by
    ``pickle`` or cloudpickle): only the job that cannot fails, naming the error.
    """
    from distributed import as_completed as dask_completed

    rounds = _DaskRounds(client, task, jobs, chunk)
    running = dask_completed(rounds.submit(ahead))
    for future in running:
        group = rounds.group_of.pop(future.key)
        try:
            results = pickle.loads(future.result())
        except Exception:  # KilledWorker, or its scattered books lost with their worker
            rounds.retry.extend(group)
        else:
            for i, result in zip(group, results, strict=True):
                done(i, result)
        future.release()
        if len(rounds.group_of) <= ahead // 2:
            running.update(rounds.submit(ahead - len(rounds.group_of)))
    _dask_alone(client, task, jobs, sorted(rounds.retry), done, lost)


class _DaskRounds:
    """The groups of books not yet sent, and the tasks in flight: each round scatters its
    books to the workers and maps ``task`` over them."""

    def __init__(
        self, client: Any, task: Callable[[bytes], bytes], jobs: Sequence[Job], chunk: int
    ) -> None:
        self.client, self.task, self.jobs = client, task, jobs
        groups = [list(range(i, min(i + chunk, len(jobs)))) for i in range(0, len(jobs), chunk)]
        self.waiting = iter(groups)
        self.group_of: dict[str, list[int]] = {}
        """Each task in flight's books."""
        self.retry: list[int] = []
        """Books to run again, one per task."""

    def _next(self, count: int) -> tuple[list[list[int]], list[Any]]:
        """Up to ``count`` groups, each with its books pickled; a group that cannot be
        pickled goes to :attr:`retry`, to run one by one."""
        batch: list[list[int]] = []
        books: list[Any] = []
        for group in self.waiting:
            try:
                books.append(_pickled([self.jobs[i] for i in group]))
            except Exception:  # a job nothing can pickle: its group goes one by one
                self.retry.extend(group)
                continue
            batch.append(group)
            if len(batch) == count:
                break
        return batch, books

    def submit(self, count: int) -> list[Any]:
        """Send up to ``count`` more tasks; returns their futures."""
        if count <= 0:
            return []
        batch, books = self._next(count)
        if not batch:
            return []
        try:  # one scatter per round: Dask deals its items round-robin over the workers
            books = self.client.scatter(books, hash=False, timeout=SCATTER_WAIT)
        except Exception:  # e.g. no worker up yet (an adaptive cluster starts with none):
            pass  # the books ride in their tasks, which wait for a worker (and ask for one)
        futures = self.client.map(
            self.task,
            books,
            key=[f"riskopt-{self.jobs[group[0]].run_id}-{len(group)}" for group in batch],
            pure=False,
        )
        self.group_of.update(
            {future.key: group for future, group in zip(futures, batch, strict=True)}
        )
        return list(futures)


def _dask_alone(
    client: Any,
    task: Callable[[bytes], bytes],
    jobs: Sequence[Job],
    indices: list[int],
    done: Callable[[int, Outcome], None],
    lost: Callable[[int, BaseException], None],
) -> None:
    """The books of a task that died, again one at a time and alone (inside the task's
    spec, not scattered): only the book that kills its worker fails, and no other book
    shares a worker with it meanwhile."""
    for i in indices:
        try:
            single = client.submit(
                task, _pickled([jobs[i]]), pure=False, key=f"riskopt-{jobs[i].run_id}-alone"
            )
        except Exception as err:  # this job cannot be pickled at all
            lost(i, err)
            continue
        try:
            done(i, pickle.loads(single.result())[0])
        except Exception as err:  # KilledWorker again: this is the book
            lost(i, err)
        single.release()


def _pickled(value: Any) -> bytes:
    """``value`` pickled, by cloudpickle where ``pickle`` cannot (a lambda, a function
    defined in a notebook), as Dask itself would ship it; raises where neither can."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        import cloudpickle  # Dask's own dependency

        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _alone(
    broken: list[tuple[int, BaseException]],
    task: Callable[[Job], Outcome],
    jobs: Sequence[Job],
    done: Callable[[int, Outcome], None],
    lost: Callable[[int, BaseException], None],
) -> None:
    """Run each book a broken pool left unfinished in a process of its own, so that only
    a book that kills its process fails (with the error of its own broken pool)."""
    for index in sorted(i for i, _ in broken):
        with ProcessPoolExecutor(max_workers=1) as alone:
            again = _drain(alone.submit, task, [jobs[index]], _at(done, index), _at(lost, index))
        for _, err in again:
            lost(index, err)


def _at(callback: Callable[[int, Any], None], index: int) -> Callable[[int, Any], None]:
    """``callback`` with the job index of a one-job drain mapped back to the batch's."""
    return lambda _, value: callback(index, value)


def _chunk(jobs: int, workers: int) -> int:
    """Books per cluster task: about eight tasks per worker, at most 16 books each."""
    return max(1, min(16, jobs // (8 * max(1, workers))))


def _is_dask_client(executor: object) -> bool:
    if "distributed" not in sys.modules:
        return False
    from distributed import Client

    return isinstance(executor, Client)


def _decisions(value: DecisionsInput) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    from riskopt.data.loaders import load_decisions

    return load_decisions(value)


def jobs_from_manifest(path: str | Path) -> list[Job]:
    """Jobs from a CSV manifest, or from a folder of job folders.

    A manifest has columns ``book`` and ``decisions`` (paths, relative to the manifest's
    folder) and optional ``run_id``, ``constraint_set``, ``state``, ``risk_aversion``.
    A folder holds one sub-folder per job with ``book/``, ``decisions.csv`` and optionally
    ``constraints.toml``; the sub-folder's name is the run id.
    """
    path = Path(path)
    if path.is_dir():
        jobs = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            constraints = sub / "constraints.toml"
            jobs.append(
                Job(
                    book=sub / "book",
                    decisions=sub / "decisions.csv",
                    constraint_set=constraints if constraints.exists() else "default",
                    run_id=sub.name,
                )
            )
        if not jobs:
            raise ValueError(f"{path}: no job folders (each needs book/ and decisions.csv)")
        return jobs
    if not path.exists():
        raise FileNotFoundError(f"manifest not found: {path}")
    text = read_config_text(path)
    header = next(csv.reader(io.StringIO(text)), [])
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ValueError(f"{path}: manifest names column {twice} more than once")
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    missing = [c for c in ("book", "decisions") if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: manifest needs columns {missing}")
    base = path.parent

    def resolve(value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else base / p

    jobs = []
    for row in table.to_dict("records"):
        cs = row.get("constraint_set") or "default"
        jobs.append(
            Job(
                book=resolve(row["book"]),
                decisions=resolve(row["decisions"]),
                constraint_set=resolve(cs) if cs.endswith(".toml") else cs,
                run_id=row.get("run_id") or None,
                state=row.get("state") or None,
                risk_aversion=float(row["risk_aversion"]) if row.get("risk_aversion") else None,
            )
        )
    return jobs
