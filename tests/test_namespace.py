"""One namespace: the distribution installs the package ``riskopt`` only, so a user's own
``data.py`` or ``optimizer.py`` cannot shadow it, and ``import riskopt`` is the public API."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pandas as pd
import pytest
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
    # Folders of data files are listed too (each ships its files as package data), so
    # that setuptools does not warn, once per folder, that it would ignore them.
    for folder in ("data/samples", "data/fixtures", "constraints/sets"):
        for sub in [root / folder, *(p for p in (root / folder).rglob("*") if p.is_dir())]:
            name = ".".join(("riskopt", *sub.relative_to(root).parts))
            found.add(name)
            assert tool["package-data"][name] == ["*"], name
    assert set(tool["packages"]) == found


ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "riskopt", "optimizer", "constraints", "data")
"""What a build reads: the project file, its readme and the folders that install."""
MIN_SETUPTOOLS = (77,)
"""The first setuptools that reads pyproject's SPDX ``license = "MIT"``; with an older one
in this environment pip builds in an isolated one instead."""


def _setuptools_version() -> tuple[int, ...]:
    try:
        import setuptools
    except ImportError:
        return ()
    return tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regular (not editable) install of the project into a fresh folder, built from a
    copy of its sources so that the build leaves nothing in the working tree."""
    base = tmp_path_factory.mktemp("install")
    source = base / "source"
    source.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=skip)
        else:
            shutil.copy2(ROOT / name, source / name)
    target = base / "target"
    isolation = ["--no-build-isolation"] if _setuptools_version() >= MIN_SETUPTOOLS else []
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation]
    done = subprocess.run(
        [*command, "--target", str(target), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return target


def test_an_install_puts_only_riskopt_into_site_packages(installed: Path) -> None:
    top = {p.name for p in installed.iterdir()} - {"bin"}
    assert top == {"riskopt", f"riskopt-{riskopt.__version__}.dist-info"}
    # pip --target puts the console script beside the packages; nothing else is there.
    assert {p.name for p in (installed / "bin").iterdir()} == {"riskopt"}
    record = (installed / f"riskopt-{riskopt.__version__}.dist-info" / "RECORD").read_text()
    roots = {line.split(",")[0].split("/")[0] for line in record.splitlines() if line}
    assert roots == {"riskopt", f"riskopt-{riskopt.__version__}.dist-info", ".."}
    for shipped in ("py.typed", "constraints/sets/default.toml", "data/samples/book/book.toml"):
        assert (installed / "riskopt" / shipped).is_file(), shipped


def test_the_installed_package_runs_beside_a_users_own_modules(
    installed: Path, tmp_path: Path
) -> None:
    for name in ("data", "optimizer", "constraints"):
        (tmp_path / f"{name}.py").write_text(f'raise RuntimeError("the user\'s own {name}.py")\n')
    script = textwrap.dedent(
        f"""
        import riskopt, riskopt.optimizer
        from riskopt.data import SAMPLES
        for module in (riskopt, riskopt.optimizer):
            assert module.__file__.startswith({str(installed)!r}), module.__file__
        r = riskopt.rebalance(
            SAMPLES / "book", SAMPLES / "decisions.csv", "default", state="NORMAL"
        )
        print(r.run.status)
        """
    )
    (tmp_path / "run.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "run.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] in {"OPTIMAL", "RELAXED"}
