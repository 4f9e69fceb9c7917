"""Sector, country and correlation-cluster caps, on net and gross exposure per group."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field, model_validator

from riskopt.constraints.base import NO_LIMIT, Limit, LinearLimit, ProgramData
from riskopt.constraints.family import BookNames, Family, Section, Tier, not_in_book, scale
from riskopt.data.clusters import estimate_clusters

if TYPE_CHECKING:
    from riskopt.constraints.config import ConstraintSet, StateSOP

KINDS = ("sector", "country", "cluster")


class GroupLimit(Section):
    """Caps per group: ``|Σ_{i∈g} h_i| ≤ max_net`` and ``Σ_{i∈g} |h_i| ≤ max_gross``."""

    max_net: float | None = Field(None, ge=0)
    max_gross: float | None = Field(None, ge=0)
    tier: Tier = Field(3, ge=1)
    net_overrides: dict[str, float] = Field(default_factory=dict)
    gross_overrides: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _non_negative_overrides(self) -> GroupLimit:
        bad = [k for d in (self.net_overrides, self.gross_overrides) for k, v in d.items() if v < 0]
        if bad:
            raise ValueError(f"overrides must be >= 0: {', '.join(sorted(bad))}")
        return self

    @property
    def active(self) -> bool:
        return bool(
            self.max_net is not None
            or self.max_gross is not None
            or self.net_overrides
            or self.gross_overrides
        )


class ClusterLimit(GroupLimit):
    """Correlation-cluster caps; clusters come from the book's ``cluster`` column when
    given, else from its returns: average-linkage clustering on ``1 − ρ``, cut so that
    names in one cluster correlate at about ``correlation`` or more."""

    correlation: float = Field(0.6, gt=0, lt=1)


class GroupsConfig(Section):
    sector: GroupLimit = GroupLimit()
    country: GroupLimit = GroupLimit()
    cluster: ClusterLimit = ClusterLimit()


def membership(labels: np.ndarray) -> tuple[list[str], sp.csr_matrix]:
    """Sorted group names and the sparse G×N matrix with a 1 where name i is in group g."""
    text = np.asarray(labels, dtype=object)
    if pd.api.types.infer_dtype(text, skipna=False) != "string":  # None, numbers: as str() reads
        text = text.astype(str).astype(object)
    rows, groups = pd.factorize(text, sort=True)
    if len(groups) and groups[0] == "":  # no group; "" sorts first
        groups, rows = groups[1:], rows - 1
    cols = np.flatnonzero(rows >= 0)
    a = sp.csr_matrix((np.ones(len(cols)), (rows[cols], cols)), shape=(len(groups), len(text)))
    return groups.tolist(), a


def _caps(
    cfg: GroupLimit, groups: list[str], default: float | None, overrides: dict[str, float]
) -> np.ndarray:
    base = np.full(len(groups), NO_LIMIT if default is None else default)
    for k, g in enumerate(groups):
        if g in overrides:
            base[k] = overrides[g]
    return base


class GroupCaps(Family):
    name = "groups"
    key = "groups"
    section = GroupsConfig

    def derive(
        self, cs: ConstraintSet, data: ProgramData, returns: pd.DataFrame | None
    ) -> tuple[ProgramData, list[str]]:
        """Clusters from the returns where cluster caps are on and the market's cluster
        column does not label every name; with neither, no labels, and a warning."""
        if not cs.groups.cluster.active or (data.cluster != "").all():
            return data, []
        if returns is None:
            return replace(data, cluster=np.full(data.n, "", dtype=object)), [
                "groups.cluster: the book has neither a cluster column for every name nor "
                "returns; cluster caps are not applied"
            ]
        names = pd.Index(data.tickers)
        labels = estimate_clusters(
            returns[names[names.isin(returns.columns)]], cs.groups.cluster.correlation
        )
        cluster = labels.reindex(data.tickers).fillna("").astype(object).to_numpy()
        return replace(data, cluster=cluster), []

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[Limit]:
        out: list[Limit] = []
        for kind in KINDS:
            cfg: GroupLimit = getattr(cs.groups, kind)
            if not cfg.active:
                continue
            labels = getattr(data, kind)
            groups, a = membership(labels)
            if not groups:
                continue
            if cfg.max_net is not None or cfg.net_overrides:
                net = _caps(cfg, groups, cfg.max_net, cfg.net_overrides)
                for key, matrix, sense, text in (
                    ("net", a, "max", f"{kind} net cap"),
                    ("net_short", -a, "min", f"{kind} net cap (short side)"),
                ):
                    out.append(
                        LinearLimit(
                            name=f"groups.{kind}.{key}",
                            family=self.name,
                            transform="id",
                            rhs=net,
                            labels=tuple(groups),
                            tier=cfg.tier,
                            scope="portfolio",
                            description=text,
                            A=sp.csr_matrix(matrix),
                            sense=sense,  # type: ignore[arg-type]
                        )
                    )
            if cfg.max_gross is not None or cfg.gross_overrides:
                gross = _caps(cfg, groups, cfg.max_gross, cfg.gross_overrides)
                out.append(
                    LinearLimit(
                        name=f"groups.{kind}.gross",
                        family=self.name,
                        transform="abs",
                        rhs=gross,
                        labels=tuple(groups),
                        tier=cfg.tier,
                        scope="portfolio",
                        description=f"{kind} gross cap",
                        A=a,
                    )
                )
        return out

    def tiers(self, cs: ConstraintSet) -> list[tuple[str, int]]:
        return [(f"groups.{kind}.tier", getattr(cs.groups, kind).tier) for kind in KINDS]

    def consistency_problems(self, cs: ConstraintSet) -> list[str]:
        problems = []
        for kind in KINDS:
            group = getattr(cs.groups, kind)
            if (
                group.max_net is not None
                and group.max_gross is not None
                and group.max_net > group.max_gross
            ):
                problems.append(
                    f"groups.{kind}.max_net: {group.max_net} above max_gross ({group.max_gross})"
                )
        return problems

    def book_problems(self, cs: ConstraintSet, book: BookNames) -> list[str]:
        """Overrides of groups the book lacks, and group net caps that cannot admit the
        net band: the most net long the groups allow is the sum of their caps; a net
        floor above it (or a net ceiling below minus it) cannot hold."""
        known = {"sector": book.sectors, "country": book.countries, "cluster": book.clusters}
        problems: list[str] = []
        for kind in KINDS:
            group = getattr(cs.groups, kind)
            for which in ("net_overrides", "gross_overrides"):
                key = f"groups.{kind}.{which}"
                problems += not_in_book(key, getattr(group, which), known[kind], f"{kind}s")
        for kind in KINDS:
            problems += _net_room_problems(cs, kind, known[kind])
        return problems

    def tightened(self, raw: Any, sop: StateSOP) -> Any:
        """Every cap and override shrinks by the state's ``groups`` multiplier."""
        for kind in KINDS:
            group = raw[kind]
            scale(group, "max_net", sop.groups)
            scale(group, "max_gross", sop.groups)
            for which in ("net_overrides", "gross_overrides"):
                group[which] = {k: v * sop.groups for k, v in group[which].items()}
        return raw


def _net_room_problems(cs: ConstraintSet, kind: str, known: set[str]) -> list[str]:
    """Where the ``kind`` net caps, added up over the book's groups, cannot admit the net
    band of ``exposure.net``."""
    group = getattr(cs.groups, kind)
    if group.max_net is None or not known:
        return []
    problems = []
    room = sum(group.net_overrides.get(g, group.max_net) for g in known)
    net = cs.exposure.net
    if net.min is not None and net.min > room:
        problems.append(
            f"groups.{kind}.max_net: the {kind} net caps add up to {room:g}, "
            f"below exposure.net.min ({net.min:g})"
        )
    if net.max is not None and net.max < -room:
        problems.append(
            f"groups.{kind}.max_net: the {kind} net caps allow at most {room:g} net short, "
            f"above -exposure.net.max ({net.max:g})"
        )
    return problems
