"""``ConstraintSet.to_toml`` writes a set back as TOML that loads to an equal set: every
shipped set under every state, and sets drawn by hypothesis over a few fields; a set that
TOML cannot hold is refused by name. ``riskopt check-constraints`` prints it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from riskopt.constraints.config import SETS_DIR, ConstraintSet
from riskopt.constraints.errors import ConfigError
from riskopt.constraints.states import resolve_state, tightened
from riskopt.optimizer.cli import app

SHIPPED = sorted(p.stem for p in SETS_DIR.glob("*.toml"))
STATES = ("NORMAL", "ELEVATED", "EMERGENCY")


def _reloaded(cs: ConstraintSet, tmp_path: Path) -> ConstraintSet:
    path = tmp_path / "written.toml"
    path.write_text(cs.to_toml(), encoding="utf-8")
    return ConstraintSet.load(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_set_loads_back_equal(name: str, tmp_path: Path) -> None:
    cs = ConstraintSet.load(name)
    back = _reloaded(cs, tmp_path)
    assert back == cs
    assert back.to_toml() == cs.to_toml()  # a fixed point, text and all
    for state in STATES:
        strict = tightened(cs, resolve_state(state, cs))
        assert ConstraintSet.from_dict(tomllib.loads(strict.to_toml())) == strict


def test_the_document_holds_every_default() -> None:
    """An empty set file resolves to the defaults, and the TOML names each of them."""
    raw = tomllib.loads(ConstraintSet.from_dict({}).to_toml())
    assert raw["position"]["max_weight"] == 0.05
    assert raw["solver"]["chain"] == ["CLARABEL", "CLARABEL_CVXPY", "SCS"]
    assert raw["states"]["ELEVATED"]["derisk_only"] is False
    assert "budget" not in raw["drawdown"]  # no value (None): left out, and loads as None


NAMES = st.text(min_size=1, max_size=12)
WEIGHTS = st.floats(min_value=1e-6, max_value=1.0, allow_subnormal=False)


@st.composite
def changes(draw: st.DrawFn) -> dict[str, Any]:
    """Dotted-key changes to the default set over a few fields: free text, overrides keyed
    by any name (quotes, dots, spaces, non-ASCII), factor bands, the solver chain."""
    band = st.tuples(
        st.floats(-1, 0, allow_subnormal=False), st.floats(0, 1, allow_subnormal=False)
    )
    return {
        "name": draw(NAMES),
        "description": draw(st.text(max_size=40)),
        "position.max_weight": draw(WEIGHTS),
        "position.overrides": draw(st.dictionaries(NAMES, WEIGHTS, max_size=4)),
        "groups.sector.net_overrides": draw(st.dictionaries(NAMES, WEIGHTS, max_size=3)),
        "factors.bands": draw(st.dictionaries(NAMES, band, max_size=3)),
        "exposure.gross.max": draw(st.floats(min_value=1.6, max_value=4.0)),
        "drawdown.budget": draw(st.none() | st.floats(min_value=0.01, max_value=0.5)),
        "solver.chain": draw(
            st.lists(st.sampled_from(["CLARABEL", "SCS", "OSQP"]), min_size=1, unique=True)
        ),
    }


@settings(max_examples=80, deadline=None)
@given(changes())
def test_any_drawn_set_loads_back_equal(drawn: dict[str, Any]) -> None:
    try:
        cs = ConstraintSet.load("default").replace(**drawn)
    except ConfigError:
        assume(False)  # the draw broke a check of the set (an inverted band, say)
        raise
    assert ConstraintSet.from_dict(tomllib.loads(cs.to_toml())) == cs


def test_a_value_toml_cannot_write_is_refused_by_name() -> None:
    cs = ConstraintSet.load("default").replace(**{"position.max_weight": None})
    with pytest.raises(ConfigError, match=r"position\.max_weight: has no value"):
        cs.to_toml()


def test_check_constraints_prints_the_set_and_its_tightened_form(tmp_path: Path) -> None:
    runner = CliRunner()
    plain = runner.invoke(app, ["check-constraints", "default"])
    assert plain.exit_code == 0, plain.output
    assert ConstraintSet.from_dict(tomllib.loads(plain.stdout)) == ConstraintSet.load("default")
    strict = runner.invoke(app, ["check-constraints", "default", "--state", "emergency"])
    assert strict.exit_code == 0, strict.output
    raw = tomllib.loads(strict.stdout)
    base = ConstraintSet.load("default")
    assert raw["active_state"] == "EMERGENCY"
    cap = base.position.max_weight * base.states.EMERGENCY.position
    assert raw["position"]["max_weight"] == pytest.approx(cap)
    bad = runner.invoke(app, ["check-constraints", "default", "--state", "calm"])
    assert bad.exit_code == 2 and "must be NORMAL, ELEVATED or EMERGENCY" in bad.output
