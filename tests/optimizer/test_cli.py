"""The command line: the demo runs; every user error is one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from riskopt.optimizer.cli import SAMPLES, app
from riskopt.optimizer.cli_support import EXIT_DEGRADED

runner = CliRunner()


def test_demo_writes_outputs_and_prints_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    for label in ("OK", "SCALED_DOWN", "CAPPED", "REJECTED"):
        assert label in result.output
    assert "largest overrides" in result.output and "binding constraints" in result.output
    targets = pd.read_csv(out / "targets.csv")
    assert list(targets["priority"]) == sorted(targets["priority"])
    run = json.loads((out / "run.json").read_text())
    assert run["status"] in ("OPTIMAL", "RELAXED")
    assert (run["state"], run["state_source"]) == ("NORMAL", "given")  # the demo's own state
    assert "state: NORMAL (given)" in result.output
    assert (out / "riskopt.sqlite").exists()


def test_rebalance_command(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "rebalance",
            "--book",
            str(SAMPLES / "book"),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
            "--constraints",
            "default",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out / "actions.csv")) >= len(pd.read_csv(SAMPLES / "decisions.csv"))
    # No --state: the set's default, printed and recorded.
    assert "state: ELEVATED (no state given: the set's default)" in result.output
    run = json.loads((out / "run.json").read_text())
    assert (run["state"], run["state_source"]) == ("ELEVATED", "missing")


def test_debate_without_a_state_takes_the_sets_default() -> None:
    from riskopt.constraints.config import ConstraintSet

    args = [
        "debate",
        "--book",
        str(SAMPLES / "book"),
        "--decisions",
        str(SAMPLES / "decisions.csv"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("state: ELEVATED (no state given: the set's default)")
    gamma = float(result.output.split("judge: γ = ", 1)[1].split(";", 1)[0])
    assert gamma >= ConstraintSet.load("default").states.ELEVATED.risk_aversion_floor
    calm = runner.invoke(app, [*args, "--state", "normal"])
    assert calm.exit_code == 0 and calm.output.startswith("state: NORMAL (given)")


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[position]\nmax_weight = -1\n")
    bad_decisions = tmp_path / "d.csv"
    bad_decisions.write_text("ticker\nAAA\n")
    cases = [
        [
            "rebalance",
            "--book",
            str(tmp_path / "nope"),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
        ],
        [
            "rebalance",
            "--book",
            str(SAMPLES / "book"),
            "--decisions",
            str(tmp_path / "missing.csv"),
        ],
        ["rebalance", "--book", str(SAMPLES / "book"), "--decisions", str(bad_decisions)],
        [
            "rebalance",
            "--book",
            str(SAMPLES / "book"),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
            "--constraints",
            str(bad_toml),
        ],
        [
            "rebalance",
            "--book",
            str(SAMPLES / "book"),
            "--decisions",
            str(SAMPLES / "decisions.csv"),
            "--risk-aversion",
            "-1",
        ],
        ["check-constraints", "no_such_set"],
    ]
    for args in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("riskopt: error:"), result.output


def test_demo_emergency_shows_the_drill(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "em"), "--state", "EMERGENCY"])
    assert result.exit_code == 0, result.output
    assert "state: EMERGENCY (given)" in result.output
    assert "emergency drill" in result.output
    drill = result.output.split("emergency drill", 1)[1].splitlines()
    gross = next(line for line in drill if line.startswith("gross")).split()[1:]
    values = [float(v.rstrip("%")) for v in gross]
    assert values[0] >= values[1] >= values[2]  # NORMAL ≥ ELEVATED ≥ EMERGENCY


def test_bad_state_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "x"), "--state", "PANIC"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("riskopt: error:") and "PANIC" in result.output


def test_batch_command_over_a_scheduler_isolates_a_broken_job(tmp_path: Path) -> None:
    """`riskopt batch --scheduler tcp://…` on a running Dask cluster; one job folder has
    a corrupt book: that book alone is DEGRADED and every other is stored."""
    from distributed import LocalCluster

    jobs = tmp_path / "jobs"
    made = runner.invoke(
        app, ["synth", "--out", str(jobs), "--n", "40", "--k", "3", "--books", "3"]
    )
    assert made.exit_code == 0, made.output
    (jobs / "account0001" / "book" / "market.csv").write_text("ticker,price\nAAA,-1\n")
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster:
        result = runner.invoke(
            app,
            [
                "batch",
                str(jobs),
                "--scheduler",
                cluster.scheduler_address,
                "--store",
                store,
                "--state",
                "NORMAL",
                "--out",
                str(tmp_path / "out"),
            ],
        )
    assert result.exit_code == EXIT_DEGRADED, result.output  # the worst book decides
    assert "3 books" in result.output and "dask" in result.output
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert list(summary["run_id"]) == ["account0000", "account0001", "account0002"]
    assert list(summary["status"] == "DEGRADED") == [False, True, False]
    assert set(summary["state"].dropna()) >= {"NORMAL"}
    import sqlalchemy as sa

    engine = sa.create_engine(store)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("select count(*) from risk_runs")).scalar()
    engine.dispose()
    assert stored == 3


def test_batch_command_rejects_conflicting_engines(tmp_path: Path) -> None:
    result = runner.invoke(app, ["batch", str(tmp_path), "--dask", "--serial"])
    assert result.exit_code == 2 and "choose one" in result.output
    result = runner.invoke(app, ["batch", str(tmp_path / "nothing.csv")])
    assert result.exit_code == 2 and "not found" in result.output


def test_batch_summaries_only_writes_the_summary_and_stores_the_tables(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    made = runner.invoke(
        app, ["synth", "--out", str(jobs), "--n", "30", "--k", "3", "--books", "2"]
    )
    assert made.exit_code == 0, made.output
    refused = runner.invoke(app, ["batch", str(jobs), "--serial", "--summaries-only"])
    assert refused.exit_code == 2 and "needs --store" in refused.output
    store = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    out = tmp_path / "out"
    args = ["batch", str(jobs), "--serial", "--summaries-only", "--store", store]
    result = runner.invoke(app, [*args, "--state", "NORMAL", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 books in" in result.output and "1 worker)" in result.output  # not "1 workers"
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
    summary = pd.read_csv(out / "summary.csv")
    import sqlalchemy as sa

    engine = sa.create_engine(store)
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.text("select run_id, count(*) from target_positions group by run_id")
            ).all()
        )
    engine.dispose()
    assert stored == dict(zip(summary["run_id"], summary["names"], strict=True))


def test_batch_without_a_state_runs_each_book_under_its_sets_default(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    made = runner.invoke(
        app, ["synth", "--out", str(jobs), "--n", "20", "--k", "2", "--books", "2"]
    )
    assert made.exit_code == 0, made.output
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(jobs), "--serial", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "state: ELEVATED (no state given: the set's default) for 2 books" in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["state"]) == ["ELEVATED"] * 2
    assert list(summary["state_source"]) == ["missing"] * 2


def _help_pages() -> dict[str, str]:
    """Every command's --help, the groups' included, at a fixed width."""
    import typer.main

    pages: dict[str, str] = {}
    todo: list[tuple[str, ...]] = [()]
    while todo:
        path = todo.pop()
        page = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100"}, terminal_width=100)
        assert page.exit_code == 0, page.output
        pages[" ".join(path) or "riskopt"] = page.output
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        todo.extend((*path, name) for name in getattr(command, "commands", {}))
    return pages


def test_help_reads_as_plain_text() -> None:
    """No value placeholder on a flag (--strict takes none), no reStructuredText markup
    shown raw, and every command's one-line summary on one line."""
    pages = _help_pages()
    assert {"riskopt", "rebalance", "batch", "explain", "db", "db upgrade"} <= pages.keys()
    for name, page in pages.items():
        assert "<bool>" not in page, name
        assert "``" not in page, name
    assert "--strict" in pages["rebalance"] and "<float>" in pages["rebalance"]
    assert "print it as TOML, every default filled in." in pages["riskopt"]
