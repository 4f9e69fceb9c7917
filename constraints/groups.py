"""Sector, country and correlation-cluster caps, on net and gross exposure per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from riskopt.constraints.base import NO_LIMIT, HardBound, LinearLimit, ProgramData
from riskopt.constraints.config import ConstraintSet, GroupLimit

KINDS = ("sector", "country", "cluster")


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


class GroupCaps:
    name = "groups"

    def limits(self, cs: ConstraintSet, data: ProgramData) -> list[LinearLimit]:
        out: list[LinearLimit] = []
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

    def bounds(self, cs: ConstraintSet, data: ProgramData) -> list[HardBound]:
        return []
