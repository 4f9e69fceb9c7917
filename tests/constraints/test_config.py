"""Constraint sets: shipped sets load; contradictions are one ConfigError naming every key."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.constraints.errors import ConfigError


@pytest.mark.parametrize("path", sorted(SETS_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_sets_load(path: Path) -> None:
    cs = ConstraintSet.load(path)
    assert cs.name == path.stem


def test_shipped_set_by_name() -> None:
    assert ConstraintSet.load("default").position.max_weight == 0.05


def test_every_problem_is_listed_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[position]
max_weight = -0.1
[exposure.gross]
max = 0.5
[exposure.net]
min = 0.4
max = 0.9
[exposure.short]
max = -1
[trading]
max_trade_pct_adv = 0.1
typo_key = 3
"""
    )
    with pytest.raises(ConfigError) as err:
        ConstraintSet.load(path)
    text = "\n".join(err.value.problems)
    assert "position.max_weight" in text
    assert "trading.typo_key: unknown key" in text
    assert "exposure.short.max" in text


def test_contradictions_between_limits(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[exposure.gross]\nmax = 0.5\n[exposure.net]\nmin = 0.3\nmax = 0.9\n")
    with pytest.raises(ConfigError) as err:
        ConstraintSet.load(path)
    assert any("exposure.net.max: 0.9 lies outside ±gross" in p for p in err.value.problems)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        ConstraintSet.load(tmp_path / "missing.toml")
    bad = tmp_path / "broken.toml"
    bad.write_text("[position\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ConstraintSet.load(bad)


def test_ill_conditioned_tiers_are_refused() -> None:
    with pytest.raises(ConfigError, match="ill-conditioned"):
        ConstraintSet.from_dict({"tiers": {"penalty_ratio": 1000.0}})


def test_replace_validates() -> None:
    cs = ConstraintSet.load("default")
    assert cs.replace(**{"exposure.gross.max": 1.2}).exposure.gross.max == 1.2
    with pytest.raises(ConfigError):
        cs.replace(**{"exposure.gross.max": 0.1})  # net band now outside ±gross
    with pytest.raises(ConfigError, match="no such key"):
        cs.replace(**{"exposure.gross.maxx": 1.0})


@pytest.mark.parametrize(
    ("section", "value", "words"),
    [
        ({"trading": {"max_trade_pct_adv": float("inf")}}, "inf", "finite"),
        ({"factors": {"bands": {"MARKET": [float("nan"), 0.1]}}}, "nan", "finite"),
        ({"risk": {"max_volatility": 25.0}}, "percent", "less than or equal to 5"),
        ({"solver": {"max_iters": 10**9}}, "huge", "less than or equal to 10000"),
        ({"solver": {"chain": []}}, "empty", "at least 1"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_set_cannot_switch_a_limit_off_or_the_solver_out(
    section: dict[str, object], value: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        ConstraintSet.from_dict({"name": value} | section)


@pytest.mark.parametrize(
    "position", [{"max_weight": 5}, {"max_weight": 0.05, "overrides": {"AAA": 10}}]
)
def test_a_per_name_cap_in_percent_is_refused_not_guessed(position: dict) -> None:  # type: ignore[type-arg]
    """``max_weight = 5`` meant 5%: taken as 500% of NAV it would leave every name
    uncapped; the set is refused with the unit named."""
    with pytest.raises(ConfigError, match="fractions of NAV"):
        ConstraintSet.from_dict({"name": "pct", "position": position})
    assert ConstraintSet.from_dict({"name": "ok", "position": {"max_weight": 1.0}})


def test_a_chain_of_which_no_solver_is_installed_is_refused() -> None:
    """``chain = ["PIQP"]`` without PIQP installed would end every run in the de-risk
    fallback; it is refused when the set is read, and the same chain as ``solvers=``."""
    import cvxpy as cp

    from riskopt.data.errors import ValidationError
    from riskopt.optimizer.solve import check_solvers

    missing = [s for s in ("PIQP", "ECOS") if s not in cp.installed_solvers()]
    if not missing:
        pytest.skip("every optional solver is installed here")
    with pytest.raises(ConfigError, match="is installed"):
        ConstraintSet.from_dict({"name": "x", "solver": {"chain": missing}})
    with pytest.raises(ValidationError, match="is installed"):
        check_solvers(missing)
    assert check_solvers([*missing, "clarabel"]) == [*missing, "CLARABEL"]
