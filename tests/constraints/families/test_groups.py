"""Group caps: ``|Σ_{i∈g} h_i| ≤ max_net`` (two rows) and ``Σ_{i∈g} |h_i| ≤ max_gross``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskopt.constraints.base import ProgramData
from riskopt.constraints.family import BookNames
from riskopt.constraints.groups import GroupCaps
from tests.constraints.families.conftest import set_with

H = np.array([0.15, 0.05, -0.12, 0.02])
"""Tech (A, B) net and gross 0.20; Energy (C) net −0.12, gross 0.12; D has no sector."""


def test_sector_rows_and_residuals(data: ProgramData) -> None:
    cs = set_with(
        groups={"sector": {"max_net": 0.1, "max_gross": 0.15, "gross_overrides": {"Energy": 0.05}}}
    )
    limits = {lim.name: lim for lim in GroupCaps().limits(cs, data)}
    assert list(limits) == ["groups.sector.net", "groups.sector.net_short", "groups.sector.gross"]
    net, short, gross = limits.values()
    assert net.labels == ("Energy", "Tech") and net.tier == 3
    assert net.A is not None and net.A.toarray() == pytest.approx(
        np.array([[0, 0, 1, 0], [1, 1, 0, 0]])
    )
    assert short.sense == "min" and short.rhs == pytest.approx([0.1, 0.1])
    assert gross.transform == "abs" and gross.rhs == pytest.approx([0.05, 0.15])
    assert net.residual(H) == pytest.approx([0.0, 0.1])
    assert short.residual(H) == pytest.approx([0.02, 0.0])
    assert gross.residual(H) == pytest.approx([0.07, 0.05])


def test_an_inactive_kind_has_no_rows(data: ProgramData) -> None:
    cs = set_with(groups={"country": {"max_gross": 0.5}})
    assert [lim.name for lim in GroupCaps().limits(cs, data)] == ["groups.country.gross"]
    assert GroupCaps().limits(set_with(), data) == []


def test_unknown_groups_and_caps_too_small_for_the_net_floor() -> None:
    cs = set_with(
        exposure={"net": {"min": 0.3, "max": 0.5}},
        groups={"sector": {"max_net": 0.1, "net_overrides": {"Retail": 0.2}}},
    )
    book = BookNames({"Tech", "Energy"}, {"US"}, set(), set(), False, set())
    assert GroupCaps().book_problems(cs, book) == [
        "groups.sector.net_overrides: sectors not in the book: Retail",
        "groups.sector.max_net: the sector net caps add up to 0.2, below exposure.net.min (0.3)",
    ]


def test_a_state_shrinks_caps_and_overrides() -> None:
    cs = set_with(
        groups={"cluster": {"max_net": 0.2, "gross_overrides": {"k1": 0.4}}},
        states={"ELEVATED": {"groups": 0.5}, "EMERGENCY": {"groups": 0.5}},
    )
    raw = GroupCaps().tightened(cs.groups.model_dump(), cs.states.ELEVATED)
    assert raw["cluster"]["max_net"] == pytest.approx(0.1)
    assert raw["cluster"]["gross_overrides"] == {"k1": pytest.approx(0.2)}
    assert raw["cluster"]["correlation"] == 0.6 and raw["sector"]["max_net"] is None


def test_clusters_are_derived_from_returns_or_said_to_be_off(data: ProgramData) -> None:
    cs = set_with(groups={"cluster": {"max_gross": 0.2}})
    no_labels = data  # the fixture's names carry no cluster label
    same, warned = GroupCaps().derive(cs, no_labels, None)
    assert (same.cluster == "").all()
    assert warned == [
        "groups.cluster: the book has neither a cluster column for every name nor returns; "
        "cluster caps are not applied"
    ]
    rng = np.random.default_rng(0)
    common = rng.normal(size=250)
    returns = pd.DataFrame(
        {
            "A": common + 0.1 * rng.normal(size=250),
            "B": common + 0.1 * rng.normal(size=250),
            "C": rng.normal(size=250),
            "D": rng.normal(size=250),
        }
    )
    derived, warned = GroupCaps().derive(cs, no_labels, returns)
    assert warned == []
    assert derived.cluster[0] == derived.cluster[1] != ""  # A and B move together
    assert len({derived.cluster[0], derived.cluster[2], derived.cluster[3]}) == 3
    assert GroupCaps().derive(set_with(), no_labels, None) == (no_labels, [])  # caps off
