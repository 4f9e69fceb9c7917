"""Many books: isolation of a failed book, the same answer on every engine, streaming."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from riskopt.data.loaders import save_book
from riskopt.data.synthetic import make_universe
from riskopt.optimizer import rebalance
from riskopt.optimizer.batch import Job, jobs_from_manifest, rebalance_many
from riskopt.optimizer.program import GateProgram

NOW = dt.datetime(2026, 11, 20, 21, 0, tzinfo=dt.UTC)
VOLATILE = ["created_at", "timestamp", "action_id"]


def _jobs(count: int, n: int = 60) -> list[Job]:
    jobs = []
    for i in range(count):
        u = make_universe(n, 4, 100 + i, coverage=0.9, years=0.5)
        jobs.append(Job(u.book, u.decisions, state="NORMAL", run_id=f"acct-{i}"))
    return jobs


def _poisoned(job: Job) -> Job:
    """A book whose risk model lost its rows after validation: its gate raises."""
    assert not isinstance(job.book, str | Path)
    model = job.book.risk_model
    assert model is not None
    broken = dataclasses.replace(model, loadings=model.loadings.iloc[:3])
    return dataclasses.replace(job, book=dataclasses.replace(job.book, risk_model=broken))


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        a.drop(columns=VOLATILE, errors="ignore").reset_index(drop=True),
        b.drop(columns=VOLATILE, errors="ignore").reset_index(drop=True),
    )


def test_a_poisoned_book_fails_over_alone(tmp_path: Path) -> None:
    jobs = _jobs(4)
    jobs[2] = _poisoned(jobs[2])
    with pytest.raises(KeyError):  # the poison is real: the gate itself raises
        rebalance(jobs[2].book, jobs[2].decisions, state="NORMAL")
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    batch = rebalance_many(jobs, executor="serial", progress=False, store=store, now=NOW)

    assert [r.run.run_id for r in batch] == [job.run_id for job in jobs]
    assert [r.run.status for r in batch.failed] == ["DEGRADED"]
    bad = batch[2]
    assert bad.run.run_id == "acct-2" and "acct-2" in batch.errors
    assert (bad.actions["action_type"] == "REJECTED").all()
    assert len(bad.actions) == len(jobs[2].decisions)  # every decision, none lost
    assert "book failed" in bad.actions["reason"].iloc[0]
    for i in (0, 1, 3):  # the others are exactly what a run of their own gives
        alone = rebalance(jobs[i].book, jobs[i].decisions, state="NORMAL", run_id=jobs[i].run_id)
        _same(batch[i].targets, alone.targets)
    # Streamed: one stored run per book, the failed one included with its status.
    engine = sa.create_engine(store)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("select run_id, status from risk_runs")).all())
    engine.dispose()
    assert rows == {r.run.run_id: r.run.status for r in batch}
    summary = batch.summary()
    assert list(summary["status"]) == [r.run.status for r in batch]
    assert summary.loc[2, "error"] != "" and (summary.drop(index=2)["error"] == "").all()


def test_a_book_without_usable_decisions_fails_alone() -> None:
    jobs = _jobs(3)
    jobs[0] = dataclasses.replace(jobs[0], decisions=jobs[0].decisions.drop(columns="ticker"))
    jobs[2] = dataclasses.replace(jobs[2], decisions="/nonexistent/decisions.csv")
    batch = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    assert [r.run.status for r in batch] == ["DEGRADED", batch[1].run.status, "DEGRADED"]
    assert batch[1].run.status in ("OPTIMAL", "RELAXED")
    assert "ticker" in batch.errors["acct-0"] and "not found" in batch.errors["acct-2"]
    assert batch[0].actions.empty  # no row of a table without tickers can be labelled


def test_a_task_that_cannot_even_be_shipped_fails_alone() -> None:
    """A job the process pool cannot pickle fails as a task, not inside the gate."""
    jobs = _jobs(3)
    jobs[1] = dataclasses.replace(jobs[1], name_risk_aversion=lambda: 1.0)  # type: ignore[arg-type]
    batch = rebalance_many(jobs, workers=2, progress=False, now=NOW)
    assert batch.engine == "processes"
    assert [r.run.status == "DEGRADED" for r in batch] == [False, True, False]
    assert "Pickl" in batch.errors["acct-1"] or "pickle" in batch.errors["acct-1"]


def test_on_dask_a_job_only_cloudpickle_ships_runs_and_one_nothing_ships_fails_alone() -> None:
    """Dask ships what cloudpickle can (a lambda); a job nothing can pickle (a lock)
    fails alone, naming the error, and the batch goes on."""
    jobs = _jobs(4)
    jobs[1] = dataclasses.replace(jobs[1], name_risk_aversion=lambda: 1.0)  # type: ignore[arg-type]
    jobs[2] = dataclasses.replace(jobs[2], name_risk_aversion=threading.Lock())  # type: ignore[arg-type]
    serial = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    dask = rebalance_many(jobs, executor="dask", workers=2, progress=False, now=NOW)
    assert [r.run.status == "DEGRADED" for r in dask] == [False, True, True, False]
    # The lambda reached the gate on a worker, which refused it as in this process.
    assert dask.errors["acct-1"] == serial.errors["acct-1"]
    assert "float()" in dask.errors["acct-1"]
    # The lock never left this process.
    assert "pickle" in dask.errors["acct-2"] and "lock" in dask.errors["acct-2"]
    for i in (0, 3):
        _same(serial[i].targets, dask[i].targets)  # type: ignore[union-attr]


def test_serial_process_pool_threads_and_dask_give_identical_results() -> None:
    jobs = _jobs(4)
    serial = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    pooled = rebalance_many(jobs, workers=2, progress=False, now=NOW)
    with ThreadPoolExecutor(2) as threads:
        threaded = rebalance_many(jobs, executor=threads, progress=False, now=NOW)
    dask = rebalance_many(jobs, executor="dask", workers=2, progress=False, now=NOW)
    assert dask.engine == "dask LocalCluster" and dask.workers == 2
    for other in (pooled, threaded, dask):
        assert len(other) == len(serial)
        for a, b in zip(serial, other, strict=True):
            assert a.run.run_id == b.run.run_id and a.run.status == b.run.status
            _same(a.targets, b.targets)
            _same(a.actions, b.actions)
            assert a.run.gamma == b.run.gamma


def test_threads_sharing_one_program_keep_each_books_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scenarios of one book share one cached program. A thread's solve must use its own
    book's values even when another thread of the same structure runs meanwhile (a pause
    before each solve lets every thread prepare its book first)."""
    u = make_universe(60, 4, 7, coverage=0.9, years=0.5)
    jobs = [
        Job(
            u.book,
            u.decisions.assign(target_weight=u.decisions["target_weight"] * (0.4 + 0.2 * i)),
            state="NORMAL",
            run_id=f"scenario-{i}",
        )
        for i in range(6)
    ]
    serial = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    assert len({tuple(r.targets["target_position"]) for r in serial}) == len(jobs)
    solve = GateProgram.solve

    def paused(self: GateProgram, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)
        return solve(self, *args, **kwargs)

    monkeypatch.setattr(GateProgram, "solve", paused)
    with ThreadPoolExecutor(len(jobs)) as threads:
        threaded = rebalance_many(jobs, executor=threads, progress=False, now=NOW)
    for a, b in zip(serial, threaded, strict=True):
        _same(a.targets, b.targets)


def test_default_run_ids_are_the_batch_and_the_index_and_must_be_unique() -> None:
    jobs = [dataclasses.replace(job, run_id=None) for job in _jobs(2)]
    batch = rebalance_many(jobs, executor="serial", progress=False, batch_id="b7", now=NOW)
    assert [r.run.run_id for r in batch] == ["b7-00000", "b7-00001"]
    twice = [
        dataclasses.replace(jobs[0], run_id="same"),
        dataclasses.replace(jobs[1], run_id="same"),
    ]
    with pytest.raises(ValueError, match="unique"):
        rebalance_many(twice, executor="serial", progress=False)
    with pytest.raises(TypeError, match="executor"):
        rebalance_many(jobs, executor="threads", progress=False)


def test_jobs_from_a_folder_of_books_and_from_a_manifest(tmp_path: Path) -> None:
    for i in range(2):
        u = make_universe(40, 3, 7 + i, years=0.3)
        save_book(u.book, tmp_path / "jobs" / f"account{i}" / "book")
        u.decisions.to_csv(tmp_path / "jobs" / f"account{i}" / "decisions.csv", index=False)
    from_folder = jobs_from_manifest(tmp_path / "jobs")
    assert [j.run_id for j in from_folder] == ["account0", "account1"]
    pd.DataFrame(
        {
            "run_id": ["a", "b"],
            "book": ["jobs/account0/book", "jobs/account1/book"],
            "decisions": ["jobs/account0/decisions.csv", "jobs/account1/decisions.csv"],
            "state": ["NORMAL", "EMERGENCY"],
            "risk_aversion": ["1.0", ""],
        }
    ).to_csv(tmp_path / "manifest.csv", index=False)
    manifest = jobs_from_manifest(tmp_path / "manifest.csv")
    assert [j.state for j in manifest] == ["NORMAL", "EMERGENCY"]
    assert manifest[0].risk_aversion == 1.0 and manifest[1].risk_aversion is None
    batch = rebalance_many(manifest, executor="serial", progress=False, now=NOW)
    assert [r.run.state for r in batch] == ["NORMAL", "EMERGENCY"]
    assert not batch.failed
    # The EMERGENCY account is held to its far tighter gross.
    assert batch[1].run.exposures_after["gross"] < batch[0].run.exposures_after["gross"] + 1e-9
    assert np.isfinite(batch.books_per_second)


class _KillsItsWorker:
    """Per-name risk aversion whose values end the process that reads them: a book that
    crashes its worker (as a segfault in native code would)."""

    def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
        import os

        os._exit(3)


@pytest.mark.parametrize("per_task", [3, 1])
def test_on_dask_a_book_that_kills_its_worker_fails_alone(per_task: int) -> None:
    """Books go to the cluster several per task; when a task dies with its worker, its
    books are re-run one per task, so only the book that kills a worker is DEGRADED. With
    one book per task, the books scattered to the dead worker are lost with it: they are
    re-run too, and succeed."""
    import dask
    from distributed import Client, LocalCluster

    jobs = _jobs(6, n=40)
    jobs[3] = dataclasses.replace(jobs[3], name_risk_aversion=_KillsItsWorker())  # type: ignore[arg-type]
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 1}),
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        import riskopt.optimizer.batch as batch_module

        chunk = batch_module._chunk
        batch_module._chunk = lambda jobs, workers: per_task
        try:
            batch = rebalance_many(jobs, executor=client, progress=False, now=NOW)
        finally:
            batch_module._chunk = chunk
    assert [r.run.status == "DEGRADED" for r in batch] == [False, False, False, True, False, False]
    assert "acct-3" in batch.errors


def test_on_a_dask_cluster_with_no_worker_yet_the_batch_waits_for_one() -> None:
    """Books cannot be scattered to a cluster with no worker (an adaptive cluster starts
    so, and scales up only for tasks it sees waiting): they then ride in their tasks,
    which wait until a worker joins, and the batch ends as it would have."""
    import threading

    from distributed import Client, LocalCluster

    jobs = _jobs(3, n=40)
    with (
        LocalCluster(n_workers=0, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        # Later than the scatter's wait for a worker (SCATTER_WAIT), so the rounds fall back.
        joins = threading.Timer(4.0, lambda: cluster.scale(1))
        joins.start()
        try:
            batch = rebalance_many(jobs, executor=client, progress=False, now=NOW)
        finally:
            joins.cancel()
    serial = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    assert not batch.failed
    for ours, theirs in zip(batch, serial, strict=True):
        pd.testing.assert_frame_equal(ours.targets, theirs.targets)


def test_local_cluster_workers_keep_the_default_memory_trimming() -> None:
    """Dask's nannies set MALLOC_TRIM_THRESHOLD_ in their workers, and leave it in the
    parent's environment; the cluster riskopt starts (and hands out for keeping one up)
    leaves glibc's default even so, runs its workers with the quiet settings, and still
    runs."""
    import os

    import dask
    from distributed import Client

    from riskopt.optimizer.batch import QUIET_WORKERS, local_cluster

    def settings() -> tuple[Any, ...]:
        return tuple(dask.config.get(key) for key in QUIET_WORKERS)

    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"  # as any default cluster leaves it
    try:
        with local_cluster(2) as cluster, Client(cluster) as client:
            seen = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
            quiet = client.run(settings)
            batch = rebalance_many(_jobs(2, n=40), executor=client, progress=False, now=NOW)
        assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # given back
    finally:
        os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    assert len(seen) == 2 and set(seen.values()) == {None}
    assert set(quiet.values()) == {tuple(QUIET_WORKERS.values())}
    assert settings() != tuple(QUIET_WORKERS.values())  # this process's own are left alone
    assert not batch.failed


def test_two_local_clusters_run_side_by_side_without_a_port_clash() -> None:
    """Two batches on one host each start their own cluster: neither may warn that a
    port is taken (the scheduler's HTTP routes once always asked for 8787)."""
    import warnings

    from distributed import Client

    from riskopt.optimizer.batch import local_cluster

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with local_cluster(1) as first, local_cluster(1) as second, Client(second) as client:
            batch = rebalance_many(_jobs(1, n=40), executor=client, progress=False, now=NOW)
            ports = {
                sock.getsockname()
                for cluster in (first, second)
                for sock in cluster.scheduler.http_server._sockets.values()
            }
    assert len(ports) == 2 and all(host == "127.0.0.1" for host, _ in ports)
    assert not batch.failed


def test_on_the_process_pool_a_book_that_kills_its_process_fails_alone() -> None:
    """The dead worker breaks the pool; the books it left are re-run one per process."""
    jobs = _jobs(5, n=40)
    jobs[1] = dataclasses.replace(jobs[1], name_risk_aversion=_KillsItsWorker())  # type: ignore[arg-type]
    batch = rebalance_many(jobs, workers=2, progress=False, now=NOW)
    assert [r.run.status == "DEGRADED" for r in batch] == [False, True, False, False, False]
    assert "acct-1" in batch.errors and "terminated abruptly" in batch.errors["acct-1"]


def test_on_a_pool_passed_in_a_book_that_kills_its_process_fails_alone() -> None:
    """A caller's pool breaks the same way; its unfinished books are re-run alone too."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = _jobs(5, n=40)
    jobs[2] = dataclasses.replace(jobs[2], name_risk_aversion=_KillsItsWorker())  # type: ignore[arg-type]
    with ProcessPoolExecutor(max_workers=2) as pool:
        batch = rebalance_many(jobs, executor=pool, progress=False, now=NOW)
    assert batch.engine == "ProcessPoolExecutor"
    assert [r.run.status == "DEGRADED" for r in batch] == [False, False, True, False, False]
    assert list(batch.errors) == ["acct-2"]


def test_summaries_without_a_store_skip_the_tables_and_read_the_same() -> None:
    """``keep="summaries"`` with nothing stored runs ``rebalance_summary`` (no tables
    written) and still gives the full batch's summary table, the poisoned book failed
    over alike, serially, on a process pool and on a Dask cluster."""
    from riskopt.optimizer.batch import BookSummary

    jobs = _jobs(4)
    jobs[2] = _poisoned(jobs[2])
    full = rebalance_many(jobs, executor="serial", progress=False, now=NOW)
    expected = full.summary().drop(columns="seconds")
    for executor in ("serial", "processes", "dask"):
        light = rebalance_many(
            jobs, executor=executor, progress=False, now=NOW, workers=2, keep="summaries"
        )
        assert all(isinstance(r, BookSummary) for r in light)
        assert [r.run.run_id for r in light.failed] == ["acct-2"]
        assert light.errors == full.errors
        pd.testing.assert_frame_equal(light.summary().drop(columns="seconds"), expected)


def test_summaries_only_keeps_the_record_and_stores_the_tables(tmp_path: Path) -> None:
    """``keep="summaries"``: each book comes back as its run record (status, counts,
    exposures, errors), a small fraction of the full result, while the store holds every
    book's tables exactly as a full run writes them."""
    import pickle

    from riskopt.optimizer.batch import BookSummary

    jobs = _jobs(4)
    jobs[1] = _poisoned(jobs[1])
    stores = {keep: f"sqlite:///{tmp_path / f'{keep}.sqlite'}" for keep in ("results", "summaries")}
    full = rebalance_many(jobs, progress=False, store=stores["results"], now=NOW, workers=2)
    light = rebalance_many(
        jobs, progress=False, store=stores["summaries"], now=NOW, workers=2, keep="summaries"
    )
    assert all(isinstance(r, BookSummary) for r in light)
    assert [r.run.status for r in light.failed] == ["DEGRADED"]
    assert light.errors == full.errors and "acct-1" in light.errors
    pd.testing.assert_frame_equal(
        light.summary().drop(columns="seconds"), full.summary().drop(columns="seconds")
    )
    assert len(pickle.dumps(light[0])) * 20 < len(pickle.dumps(full[0]))
    tables = {}
    for keep, url in stores.items():
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            tables[keep] = pd.read_sql(
                sa.text(
                    "select run_id, ticker, target_position from target_positions "
                    "order by run_id, ticker"
                ),
                conn,
            )
        engine.dispose()
    assert len(tables["results"]) > 100
    pd.testing.assert_frame_equal(tables["summaries"], tables["results"])
    with pytest.raises(ValueError, match="keep must be one of"):
        rebalance_many(jobs, executor="serial", progress=False, keep="tables")
