"""The registry of families: every tier setting is checked alike, every family's section is
a field of the ConstraintSet, and the mypy declaration of those fields matches the model."""

from __future__ import annotations

import ast
import inspect
from typing import Any

import pytest

import riskopt.constraints.config as config
from riskopt.constraints import FAMILIES
from riskopt.constraints.config import ConstraintSet, tier_settings
from riskopt.constraints.errors import ConfigError


def test_every_tier_setting_of_the_default_set_is_listed() -> None:
    keys = {key for key, _ in tier_settings(ConstraintSet.load("default"))}
    assert {
        "position.tier",
        "exposure.gross.tier",
        "groups.cluster.tier",
        "liquidity.volatility_tier",
        "restricted.close_tier",
        "envelope.tier",
        "states.ELEVATED.forced_derisk_tier",
        "states.EMERGENCY.forced_derisk_tier",
    } <= keys


@pytest.mark.parametrize(
    "key",
    [
        "position.tier",
        "exposure.net.tier",
        "groups.sector.tier",
        "factors.tier",
        "liquidity.position_tier",
        "risk.tier",
        "restricted.close_tier",
        "envelope.tier",
        "states.NORMAL.forced_derisk_tier",
        "states.EMERGENCY.forced_derisk_tier",
    ],
)
def test_a_tier_below_the_lowest_is_refused_naming_its_key(key: str) -> None:
    """Each tier setting past ``tiers.lowest`` (4) is one problem naming its key, as
    ``position.tier`` always was (``forced_derisk_tier`` and ``envelope.tier`` were
    quietly penalised as tier 4)."""
    with pytest.raises(ConfigError) as err:
        ConstraintSet.load("default").replace(**{key: 9})
    # A lone problem of the whole set names its key, with no "<root>: " before it.
    assert err.value.problems == [f"{key}: tier 9 is past tiers.lowest (4)"]


def test_forced_derisk_and_envelope_tiers_from_toml_are_refused() -> None:
    raw: dict[str, Any] = {
        "states": {"EMERGENCY": {"forced_derisk_tier": 9}},
        "envelope": {"tier": 12},
        "strategies": {"s1": {"max_gross": 0.5, "tier": 5}},
    }
    with pytest.raises(ConfigError) as err:
        ConstraintSet.from_dict(raw)
    assert set(err.value.problems) == {
        "states.EMERGENCY.forced_derisk_tier: tier 9 is past tiers.lowest (4)",
        "envelope.tier: tier 12 is past tiers.lowest (4)",
        "strategies.s1.tier: tier 5 is past tiers.lowest (4)",
    }


def test_a_tier_at_the_lowest_is_accepted_and_lowering_lowest_refuses_it() -> None:
    cs = ConstraintSet.from_dict({"envelope": {"tier": 4}})
    assert cs.envelope.tier == 4
    with pytest.raises(ConfigError, match=r"envelope\.tier: tier 4 is past tiers.lowest \(3\)"):
        cs.replace(**{"tiers.lowest": 3})


def test_every_family_section_is_a_field_and_defaults_load() -> None:
    fields = ConstraintSet.model_fields
    keys = [f.key for f in FAMILIES if f.key is not None]
    assert len(keys) == len(set(keys))
    assert set(keys) <= set(fields)
    cs = ConstraintSet()
    for key in keys:
        assert getattr(cs, key) == fields[key].get_default(call_default_factory=True)


def test_the_type_checking_declaration_matches_the_model() -> None:
    """The ``TYPE_CHECKING`` class that mypy reads names only fields of registered
    families that the model has beyond ``PolicyBase`` (a family it does not name reads
    its section with ``Family.own``)."""
    tree = ast.parse(inspect.getsource(config))
    declared = {
        node.target.id
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef) and cls.name == "ConstraintSet"
        for node in cls.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    built = set(ConstraintSet.model_fields) - set(config.PolicyBase.model_fields)
    assert declared and declared <= built
