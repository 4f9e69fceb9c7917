"""One namespace: the distribution installs the package ``riskopt`` only, so a user's own
``data.py`` or ``optimizer.py`` cannot shadow it, and ``import riskopt`` is the public API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

import riskopt
from riskopt.data import SAMPLES

PUBLIC = (
    "rebalance",
    "rebalance_summary",
    "rebalance_many",
    "Job",
    "load_book",
    "load_decisions",
    "Book",
    "ConstraintSet",
    "BlackSwanState",
    "RebalanceResult",
    "BookSummary",
    "RunInfo",
    "RiskoptError",
    "ValidationError",
    "ConfigError",
    "BookLoadError",
    "StoreError",
    "DatabaseMissingError",
)


def test_a_users_own_data_and_optimizer_modules_do_not_shadow_riskopt(tmp_path: Path) -> None:
    for name in ("data", "optimizer", "constraints"):
        (tmp_path / f"{name}.py").write_text(f'raise RuntimeError("the user\'s own {name}.py")\n')
    script = textwrap.dedent(
        f"""
        import riskopt
        r = riskopt.rebalance(
            riskopt.load_book({str(SAMPLES / "book")!r}),
            riskopt.load_decisions({str(SAMPLES / "decisions.csv")!r}),
            'default',
            state='NORMAL',
        )
        print(r.run.status)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] in {"OPTIMAL", "RELAXED"}


def test_import_riskopt_is_the_public_api() -> None:
    for name in PUBLIC:
        assert hasattr(riskopt, name), name
        assert name in riskopt.__all__, name
    assert isinstance(riskopt.__version__, str) and riskopt.__version__
    assert riskopt.rebalance is riskopt.optimizer.rebalance
    assert issubclass(riskopt.ConfigError, riskopt.RiskoptError)
    assert issubclass(riskopt.DatabaseMissingError, riskopt.StoreError)
    assert (Path(riskopt.__file__).parent / "py.typed").exists()


def test_the_subpackages_live_under_riskopt() -> None:
    import riskopt.constraints
    import riskopt.data
    import riskopt.optimizer

    assert riskopt.optimizer.__name__ == "riskopt.optimizer"
    assert riskopt.data.SAMPLES.is_dir()
    assert (Path(riskopt.constraints.__file__).parent / "sets" / "default.toml").exists()
    for top in ("optimizer", "constraints", "data"):
        assert top not in sys.modules or not hasattr(sys.modules[top], "rebalance")


def test_riskopt_version_on_the_command_line() -> None:
    script = shutil.which("riskopt", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "riskopt.optimizer.cli"]
    done = subprocess.run(
        [*command, "--version"], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == f"riskopt {riskopt.__version__}"


def test_every_run_record_carries_the_version(
    tmp_path: Path, sample: tuple[riskopt.Book, pd.DataFrame]
) -> None:
    book, decisions = sample
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    result = riskopt.rebalance(
        book, decisions, "default", state="NORMAL", risk_aversion=0.1, store=url
    )
    assert result.run.version == riskopt.__version__
    assert result.run.to_dict()["version"] == riskopt.__version__
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            record = conn.execute(sa.text("SELECT record FROM risk_runs")).scalar_one()
    finally:
        engine.dispose()
    if isinstance(record, str):
        record = json.loads(record)
    assert record["version"] == riskopt.__version__


def test_pyproject_lists_every_package_under_riskopt() -> None:
    """``packages`` is listed by hand (the folders install under another name), so a new
    subpackage must be added there too or a regular install would leave it out."""
    root = Path(__file__).resolve().parent.parent
    tool = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {"riskopt"}
    for folder in ("optimizer", "constraints", "data"):
        assert tool["package-dir"][f"riskopt.{folder}"] == folder
        for init in (root / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(root).parts
            found.add(".".join(("riskopt", *parts)))
    assert set(tool["packages"]) == found
