"""The ``ConstraintSet``: a typed, validated model of one risk policy, loaded from TOML.

Every limit has a name (its TOML key), a value and a priority tier (1 = highest, the
last to give way). Unknown keys are errors, so a typo never silently drops a limit.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError

from constraints.errors import ConfigError

SETS_DIR = Path(__file__).parent / "sets"
MAX_PENALTY = 1e6
"""Largest slack penalty allowed: beyond it interior-point solvers lose accuracy."""
Tier = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TiersConfig(_Section):
    """Exact-penalty weights of the elastic slacks: ``ρ_t = base · ratio^(lowest − t)``."""

    penalty_base: float = Field(10.0, gt=0)
    penalty_ratio: float = Field(10.0, gt=1)
    lowest: int = Field(4, ge=1, le=8)

    @model_validator(mode="after")
    def _conditioned(self) -> TiersConfig:
        top = self.penalty_base * self.penalty_ratio ** (self.lowest - 1)
        if top > MAX_PENALTY:
            raise ValueError(
                f"tier 1 penalty {top:.3g} exceeds {MAX_PENALTY:.0e}: the program becomes "
                "ill-conditioned; lower penalty_ratio or the number of tiers"
            )
        return self


class ObjectiveConfig(_Section):
    """Weights of the tracking objective and the optional trading-cost term."""

    hold_weight: float = Field(1.0, gt=0, description="tracking weight c of pairs with no decision")
    confidence_floor: float = Field(0.05, gt=0, le=1, description="c = max(confidence, floor)")
    costs: bool = Field(False, description="add κ|Δh|: half-spread plus commission")
    commission_bps: float = Field(0.0, ge=0)


class PositionConfig(_Section):
    """Per-name cap on the absolute ticker weight ``|h_i|`` (policy)."""

    max_weight: float | None = Field(0.05, gt=0)
    tier: Tier = Field(2, ge=1)
    overrides: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _positive_overrides(self) -> PositionConfig:
        bad = [k for k, v in self.overrides.items() if not v > 0]
        if bad:
            raise ValueError(f"overrides must be > 0: {', '.join(bad)}")
        return self


class MaxLimit(_Section):
    max: float | None = Field(None, ge=0)
    tier: Tier = Field(1, ge=1)


class BandLimit(_Section):
    min: float | None = None
    max: float | None = None
    tier: Tier = Field(1, ge=1)


class ExposureConfig(_Section):
    """Gross ``Σ|h|``, net ``Σh``, long ``Σh⁺`` and short ``Σh⁻`` exposure (policy)."""

    gross: MaxLimit = MaxLimit(max=2.0)
    net: BandLimit = BandLimit(min=-0.5, max=0.5)
    long: MaxLimit = MaxLimit()
    short: MaxLimit = MaxLimit()


class TradingConfig(_Section):
    """Hard per-name trade limit: ``|Δshares| ≤ max_trade_pct_adv · ADV``."""

    max_trade_pct_adv: float | None = Field(0.10, gt=0)


class SanityConfig(_Section):
    """Decisions beyond these are rejected as absurd before the solve."""

    max_abs_target_weight: float = Field(0.5, gt=0)


class LabelConfig(_Section):
    """Tolerances of the diff: a final trade within ``weight_tol + lot_tol · lot`` is OK."""

    weight_tol: float = Field(1e-4, ge=0)
    lot_tol: float = Field(1.0, ge=0)


class SolverConfig(_Section):
    """Solvers tried in order; the de-risk-only fallback follows the last."""

    chain: list[Literal["CLARABEL", "SCS", "OSQP", "ECOS", "PIQP"]] = ["CLARABEL", "SCS", "OSQP"]
    max_iters: int = Field(500, ge=10)


class ConstraintSet(_Section):
    """One risk policy: every limit of the gate, with its tier."""

    name: str = "unnamed"
    description: str = ""
    tiers: TiersConfig = TiersConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    position: PositionConfig = PositionConfig()
    exposure: ExposureConfig = ExposureConfig()
    trading: TradingConfig = TradingConfig()
    sanity: SanityConfig = SanityConfig()
    labels: LabelConfig = LabelConfig()
    solver: SolverConfig = SolverConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ConstraintSet:
        problems = consistency_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- loading -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "<dict>") -> ConstraintSet:
        """Validate a parsed TOML document; every problem in one ConfigError."""
        try:
            return cls.model_validate(raw)
        except PydanticValidationError as err:
            raise ConfigError(source, _pydantic_problems(err)) from None

    @classmethod
    def load(cls, path: str | Path) -> ConstraintSet:
        """Load a TOML file, or a shipped set by name (``"default"``, ``"conservative"``...)."""
        path = resolve_set_path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except OSError as err:
            raise ConfigError(str(path), [f"cannot read file: {err}"]) from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(str(path), [f"not valid TOML: {err}"]) from None
        raw.setdefault("name", path.stem)
        return cls.from_dict(raw, source=str(path))

    def replace(self, **changes: Any) -> ConstraintSet:
        """A copy with dotted-key changes, validated: ``cs.replace(**{"exposure.gross.max": 1.2})``."""
        raw = self.model_dump()
        for dotted, value in changes.items():
            node = raw
            keys = dotted.split(".")
            for key in keys[:-1]:
                node = node[key]
            if keys[-1] not in node:
                raise ConfigError(self.name, [f"{dotted}: no such key"])
            node[keys[-1]] = value
        return ConstraintSet.from_dict(raw, source=self.name)

    def tier_penalty(self, tier: int) -> float:
        lowest = max(self.tiers.lowest, tier)
        return self.tiers.penalty_base * self.tiers.penalty_ratio ** (lowest - tier)


def resolve_set_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.suffix != ".toml" and not candidate.exists():
        shipped = SETS_DIR / f"{candidate.name}.toml"
        if shipped.exists():
            return shipped
    if not candidate.exists():
        raise ConfigError(str(path), ["file not found (and no shipped set of that name)"])
    return candidate


def consistency_problems(cs: ConstraintSet) -> list[str]:
    """Contradictions between limits, each named by its TOML key."""
    problems: list[str] = []
    gross = cs.exposure.gross.max
    net = cs.exposure.net
    if gross is not None and gross < 0:
        problems.append(f"exposure.gross.max: must be >= 0, got {gross}")
    if net.min is not None and net.max is not None and net.min > net.max:
        problems.append(f"exposure.net: min {net.min} > max {net.max}")
    if gross is not None:
        for key, value in (("min", net.min), ("max", net.max)):
            if value is not None and abs(value) > gross:
                problems.append(f"exposure.net.{key}: {value} lies outside ±gross ({gross})")
    for side in ("long", "short"):
        limit = getattr(cs.exposure, side).max
        if limit is not None and limit < 0:
            problems.append(f"exposure.{side}.max: must be >= 0, got {limit}")
    long_max, short_max = cs.exposure.long.max, cs.exposure.short.max
    if net.min is not None and long_max is not None and net.min > long_max:
        problems.append(f"exposure.net.min: {net.min} exceeds exposure.long.max ({long_max})")
    if net.max is not None and short_max is not None and -net.max > short_max:
        problems.append(
            f"exposure.net.max: {net.max} needs more short than exposure.short.max ({short_max})"
        )
    for tier_key, tier in _tiers(cs):
        if tier > cs.tiers.lowest:
            problems.append(f"{tier_key}: tier {tier} is below tiers.lowest ({cs.tiers.lowest})")
    return problems


def _tiers(cs: ConstraintSet) -> list[tuple[str, int]]:
    return [
        ("position.tier", cs.position.tier),
        ("exposure.gross.tier", cs.exposure.gross.tier),
        ("exposure.net.tier", cs.exposure.net.tier),
        ("exposure.long.tier", cs.exposure.long.tier),
        ("exposure.short.tier", cs.exposure.short.tier),
    ]


def _pydantic_problems(err: PydanticValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        if key == "<root>" and "; " in msg:
            problems.extend(msg.split("; "))
        else:
            problems.append(f"{key}: {msg}")
    return problems
