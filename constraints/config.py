"""The ``ConstraintSet``: a typed, validated model of one risk policy, loaded from TOML.

Every limit has a name (its TOML key), a value and a priority tier (1 = highest, the
last to give way). Unknown keys are errors, so a typo never silently drops a limit.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from riskopt.constraints.errors import ConfigError
from riskopt.data.config_files import ConfigFileError, read_toml

SETS_DIR = Path(__file__).parent / "sets"
MAX_PENALTY = 1e6
"""Largest slack penalty allowed: beyond it interior-point solvers lose accuracy."""
Tier = int


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


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
        bad = [k for k, v in self.overrides.items() if not v >= 0]
        if bad:
            raise ValueError(f"overrides must be >= 0: {', '.join(bad)}")
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
    """Hard trading rules: ``|Δshares| ≤ max_trade_pct_adv · ADV`` per name, and the gate
    only trims each (strategy, ticker) pair (``only_trim``)."""

    max_trade_pct_adv: float | None = Field(0.10, gt=0)
    only_trim: bool = True
    """Each (strategy, ticker) pair ends between min and max of {0, held, proposed}."""


class GroupLimit(_Section):
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


class GroupsConfig(_Section):
    sector: GroupLimit = GroupLimit()
    country: GroupLimit = GroupLimit()
    cluster: ClusterLimit = ClusterLimit()


class FactorsConfig(_Section):
    """Exposure bands ``lower ≤ (Bᵀh)_k ≤ upper`` per factor of the risk model."""

    tier: Tier = Field(3, ge=1)
    bands: dict[str, tuple[float, float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> FactorsConfig:
        bad = [k for k, (lo, hi) in self.bands.items() if lo > hi]
        if bad:
            raise ValueError(f"band lower above upper: {', '.join(sorted(bad))}")
        return self


class LiquidityConfig(_Section):
    """Liquidity: position cap in days of ADV (policy), hard gates, volatility-scaled caps."""

    max_position_pct_adv: float | None = Field(None, gt=0)
    """A position may be at most this share of ADV times ``liquidation_days``."""
    liquidation_days: float = Field(5.0, gt=0)
    position_tier: Tier = Field(2, ge=1)
    max_spread_bps: float | None = Field(None, gt=0)
    """Hard gate: names quoted wider than this may not grow."""
    max_tick_to_price: float | None = Field(None, gt=0)
    """Hard gate: names whose tick is a larger share of price than this may not grow."""
    min_price: float | None = Field(None, gt=0)
    """Hard gate: names priced below this may not grow."""
    volatility_budget: float | None = Field(None, gt=0)
    """Per-name risk cap: ``|h_i| σ_i ≤ volatility_budget``."""
    volatility_tier: Tier = Field(2, ge=1)


class RiskConfig(_Section):
    """Ex-ante volatility cap from the factor model (a second-order cone)."""

    max_volatility: float | None = Field(None, gt=0, le=5.0)
    """Annualized, as a fraction: 0.25 is 25%. Above 5 (500%) it was given in percent."""
    tier: Tier = Field(2, ge=1)


class DrawdownConfig(_Section):
    """Grossman–Zhou risk budget ``m(d) = max(floor, (D − d)/(D(1 − d)))`` from the NAV path.

    ``m`` multiplies the volatility cap and the gross cap; ``strategy_budget`` does the
    same to each strategy's sleeve gross budget from that strategy's own NAV path.
    """

    budget: float | None = Field(None, gt=0, lt=1)
    floor: float = Field(0.25, ge=0, le=1)
    strategy_budget: float | None = Field(None, gt=0, lt=1)


class StrategyBudget(_Section):
    """A strategy sleeve's own budget, over its pairs: ``Σ|w|`` and ``Σw``."""

    max_gross: float | None = Field(None, ge=0)
    min_net: float | None = None
    max_net: float | None = None
    tier: Tier = Field(2, ge=1)
    only_trim: bool | None = None
    """``false``: this sleeve is a hedging overlay the gate may open, flip or extend
    (unset: the book's ``[trading] only_trim``)."""


class RestrictedConfig(_Section):
    """Restricted names: ``reduce_only`` may only shrink (hard); ``close`` must go to zero
    as fast as the trade limit allows (hard reduce-only plus a tier-``close_tier`` cap of 0)."""

    reduce_only: list[str] = Field(default_factory=list)
    close: list[str] = Field(default_factory=list)
    close_tier: Tier = Field(1, ge=1)


class StateSOP(_Section):
    """The standard operating procedure of one black-swan state: it only ever tightens.

    Multipliers (each in (0, 1]) scale a family's caps toward zero; the other fields add
    restrictions. EMERGENCY must be at least as strict as ELEVATED, field by field.
    """

    position: float = Field(1.0, gt=0, le=1, description="per-name caps (position, liquidity)")
    gross: float = Field(1.0, gt=0, le=1, description="gross, long and short caps")
    net: float = Field(1.0, gt=0, le=1, description="the net band, shrunk toward zero")
    groups: float = Field(1.0, gt=0, le=1, description="sector, country and cluster caps")
    volatility: float = Field(1.0, gt=0, le=1, description="ex-ante volatility cap and budgets")
    strategies: float = Field(1.0, gt=0, le=1, description="sleeve gross budgets")
    risk_aversion_floor: float = Field(0.0, ge=0)
    no_new_positions: bool = False
    derisk_only: bool = False
    """Every name may only move toward zero, never grow or flip sign."""
    forced_derisk: float = Field(0.0, ge=0, lt=1)
    """Gross must fall by this fraction of the current gross (as far as liquidity allows)."""
    forced_derisk_tier: Tier = Field(1, ge=1)

    MULTIPLIERS: ClassVar[tuple[str, ...]] = (
        "position",
        "gross",
        "net",
        "groups",
        "volatility",
        "strategies",
    )

    def stricter_than(self, other: StateSOP) -> list[str]:
        """Fields in which ``self`` is looser than ``other`` (empty: at least as strict)."""
        looser = [f for f in self.MULTIPLIERS if getattr(self, f) > getattr(other, f)]
        if self.risk_aversion_floor < other.risk_aversion_floor:
            looser.append("risk_aversion_floor")
        looser += [
            f
            for f in ("no_new_positions", "derisk_only")
            if getattr(other, f) and not getattr(self, f)
        ]
        if self.forced_derisk < other.forced_derisk:
            looser.append("forced_derisk")
        return looser

    def at_least(self, other: StateSOP) -> StateSOP:
        """``self`` tightened, field by field, to be at least as strict as ``other``."""
        values = self.model_dump()
        for f in self.MULTIPLIERS:
            values[f] = min(values[f], getattr(other, f))
        for f in ("risk_aversion_floor", "forced_derisk"):
            values[f] = max(values[f], getattr(other, f))
        for f in ("no_new_positions", "derisk_only"):
            values[f] = values[f] or getattr(other, f)
        return StateSOP.model_validate(values)


class StatesConfig(_Section):
    """SOPs per black-swan state, and how a missing or stale state is treated."""

    NORMAL: StateSOP = StateSOP()
    """No restriction by default; the gate writes the monitor's overrides here."""
    ELEVATED: StateSOP = StateSOP()
    EMERGENCY: StateSOP = StateSOP()
    default_state: Literal["NORMAL", "ELEVATED", "EMERGENCY"] = "ELEVATED"
    """The state assumed when none is given or the given one is stale."""
    never_exceed_calmer: bool = True
    """Cap each stricter state's exposures at the calmer state's outcome (EnvelopeConfig)."""
    max_age_hours: float = Field(24.0, gt=0)
    """A state older than this (against the run's clock) is stale."""

    @model_validator(mode="after")
    def _states_tighten(self) -> StatesConfig:
        problems = []
        for calmer, stricter in (("NORMAL", "ELEVATED"), ("ELEVATED", "EMERGENCY")):
            looser = self.sop(stricter).stricter_than(self.sop(calmer))
            if looser:
                problems.append(
                    f"states.{stricter}: looser than states.{calmer} in {', '.join(looser)}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def sop(self, state: str) -> StateSOP:
        """The SOP of ``state`` (``NORMAL``, ``ELEVATED`` or ``EMERGENCY``)."""
        sop: StateSOP = getattr(self, state)
        return sop


class EnvelopeConfig(_Section):
    """The calmer state's outcome, which a stricter state may not exceed (set by the gate).

    Under ELEVATED the gate first solves the same inputs under NORMAL, and under
    EMERGENCY under ELEVATED; that outcome's gross, |net|, per-name |weight| and ex-ante
    volatility become tier-``tier`` limits here (the lowest), so exposures never increase
    from one state to the next whenever the stricter state can reach them.
    """

    source_state: str | None = None
    gross: float | None = Field(None, ge=0)
    abs_net: float | None = Field(None, ge=0)
    volatility: float | None = Field(None, ge=0)
    per_name: dict[str, float] = Field(default_factory=dict)
    tier: Tier = Field(4, ge=1)
    """The lowest tier by default: the state's own limits come first, and a small
    penalty keeps the many near-active rows well conditioned."""


class DebateConfig(_Section):
    """The risk debate that sets the program's risk aversion when the caller does not."""

    max_risk_discuss_rounds: int = Field(1, ge=1, le=10)
    base_risk_aversion: float = Field(0.05, gt=0)
    """γ of a calm book: every analyst's proposal is a log-offset from this. On the
    gate's scale γ = 0.05 alone would shrink the book by about 5% (γ / (1 + γ))."""
    min_risk_aversion: float = Field(0.01, gt=0)
    max_risk_aversion: float = Field(1.0, gt=0)
    """γ = 1 alone would halve the book: the most stress may ask."""
    min_name_risk_aversion: float = Field(0.5, gt=0)
    max_name_risk_aversion: float = Field(10.0, gt=0)
    vol_short_days: int = Field(21, ge=2)
    vol_long_days: int = Field(252, ge=5)

    @model_validator(mode="after")
    def _ordered(self) -> DebateConfig:
        problems = []
        if not self.min_risk_aversion <= self.base_risk_aversion <= self.max_risk_aversion:
            problems.append(
                "debate.base_risk_aversion: must lie within [min_risk_aversion, max_risk_aversion]"
            )
        if self.min_name_risk_aversion > 1.0 or self.max_name_risk_aversion < 1.0:
            problems.append("debate: the name bounds must contain 1")
        if self.vol_short_days >= self.vol_long_days:
            problems.append("debate.vol_short_days: must be shorter than vol_long_days")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class SanityConfig(_Section):
    """Decisions beyond these are rejected as absurd before the solve."""

    max_abs_target_weight: float = Field(0.5, gt=0)


class LabelConfig(_Section):
    """Tolerances of the diff: a final trade within ``weight_tol + lot_tol · lot`` is OK."""

    weight_tol: float = Field(1e-4, ge=0)
    lot_tol: float = Field(1.0, ge=0)


SolverName = Literal["CLARABEL", "CLARABEL_CVXPY", "SCS", "OSQP", "ECOS", "PIQP"]
SOLVERS: tuple[str, ...] = get_args(SolverName)
"""The solvers a chain may name (in any case: ``"clarabel"`` is ``"CLARABEL"``)."""


class SolverConfig(_Section):
    """Solvers tried in order; the de-risk-only fallback follows the last.
    ``CLARABEL_CVXPY`` is Clarabel on cvxpy's compile of the program (benchmarks/README.md,
    "Solver chain", has what each member rescues)."""

    chain: list[SolverName] = Field(["CLARABEL", "CLARABEL_CVXPY", "SCS"], min_length=1)
    max_iters: int = Field(500, ge=10, le=10_000)
    """Interior-point iterations (the gate's programs need 15–60); first-order solvers
    get 20× (SCS) and 100× (OSQP) this. Beyond 10,000 a solver's own counters overflow."""

    @field_validator("chain", mode="before")
    @classmethod
    def _any_case(cls, chain: Any) -> Any:
        """Solver names in any case; anything else is left for the check of its type."""
        if isinstance(chain, list | tuple):
            return [name.upper() if isinstance(name, str) else name for name in chain]
        return chain


class ConstraintSet(_Section):
    """One risk policy: every limit of the gate, with its tier."""

    name: str = "unnamed"
    description: str = ""
    tiers: TiersConfig = TiersConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    position: PositionConfig = PositionConfig()
    exposure: ExposureConfig = ExposureConfig()
    trading: TradingConfig = TradingConfig()
    groups: GroupsConfig = GroupsConfig()
    factors: FactorsConfig = FactorsConfig()
    liquidity: LiquidityConfig = LiquidityConfig()
    risk: RiskConfig = RiskConfig()
    drawdown: DrawdownConfig = DrawdownConfig()
    strategies: dict[str, StrategyBudget] = Field(default_factory=dict)
    restricted: RestrictedConfig = RestrictedConfig()
    states: StatesConfig = StatesConfig()
    active_state: Literal["NORMAL", "ELEVATED", "EMERGENCY"] = "NORMAL"
    envelope: EnvelopeConfig = EnvelopeConfig()
    debate: DebateConfig = DebateConfig()
    """The state this set has been tightened for (set by the gate, not by hand)."""
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
            stat = path.stat()
            raw = copy.deepcopy(_parsed_toml(str(path), stat.st_mtime_ns, stat.st_size))
        except OSError as err:
            raise ConfigError(str(path), [f"cannot read file: {err}"]) from None
        except ConfigFileError as err:
            raise ConfigError(str(path), [str(err).removeprefix(f"{path}: ")]) from None
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

    @property
    def preference_penalty(self) -> float:
        """The penalty of the gate's own preferences: one step below the lowest tier."""
        return self.tiers.penalty_base / self.tiers.penalty_ratio

    def tier_penalty(self, tier: int) -> float:
        lowest = max(self.tiers.lowest, tier)
        return self.tiers.penalty_base * self.tiers.penalty_ratio ** (lowest - tier)


@functools.lru_cache(maxsize=64)
def _parsed_toml(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """A set file's TOML, parsed once per version of the file (keyed by its modification
    time and size): a batch of thousands of books names the same set each time."""
    return read_toml(path)


def resolve_set_path(path: str | Path) -> Path:
    candidate = Path(path)
    if candidate.suffix != ".toml" and not candidate.exists():
        shipped = SETS_DIR / f"{candidate.name}.toml"
        if shipped.exists():
            return shipped
    if not candidate.exists():
        raise ConfigError(str(path), ["file not found (and no shipped set of that name)"])
    return candidate


def book_problems(
    cs: ConstraintSet,
    *,
    sectors: set[str],
    countries: set[str],
    clusters: set[str],
    factors: set[str],
    has_risk_model: bool,
) -> list[str]:
    """Groups and factors in the set that the book does not have, and limits the book
    cannot support.

    Unlike a warning, an unknown sector, country, cluster or factor here is an error: a
    typo must never silently switch a limit off. Tickers are the exception
    (:func:`book_warnings`), as are strategy budgets: a firm-wide set names every
    strategy and more tickers than one book trades, and a limit on a name or strategy
    this book does not have simply does not apply.
    """
    problems: list[str] = []

    def unknown(key: str, names: Iterable[str], known: set[str], what: str) -> None:
        problems.extend(_not_in_book(key, names, known, what))

    for kind, known in (("sector", sectors), ("country", countries), ("cluster", clusters)):
        group = getattr(cs.groups, kind)
        unknown(f"groups.{kind}.net_overrides", group.net_overrides, known, f"{kind}s")
        unknown(f"groups.{kind}.gross_overrides", group.gross_overrides, known, f"{kind}s")
    unknown("factors.bands", cs.factors.bands, factors, "factors")
    # Group net caps must admit the net band: the most net long the groups allow is the
    # sum of their caps; a net floor above it (or a net ceiling below minus it) cannot hold.
    for kind, known in (("sector", sectors), ("country", countries), ("cluster", clusters)):
        group = getattr(cs.groups, kind)
        if group.max_net is None or not known:
            continue
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
    if not has_risk_model:
        if cs.risk.max_volatility is not None:
            problems.append("risk.max_volatility: the book has no risk model (loadings or returns)")
        if cs.factors.bands:
            problems.append("factors.bands: the book has no risk model (loadings or returns)")
    return problems


def book_warnings(cs: ConstraintSet, *, tickers: set[str]) -> list[str]:
    """Tickers that the set names (per-ticker overrides, restricted lists) and the book
    does not have: not an error, since a firm-wide list names more than one book holds,
    but said in the run's warnings."""
    return [
        warning
        for key, names in (
            ("position.overrides", cs.position.overrides),
            ("restricted.reduce_only", cs.restricted.reduce_only),
            ("restricted.close", cs.restricted.close),
        )
        for warning in _not_in_book(key, names, tickers, "tickers")
    ]


def _not_in_book(key: str, names: Iterable[str], known: set[str], what: str) -> list[str]:
    missing = sorted(set(names) - known)
    if not missing:
        return []
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return [f"{key}: {what} not in the book: {', '.join(missing[:10])}{more}"]


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
    for name, budget in cs.strategies.items():
        key = f"strategies.{name}"
        if (
            budget.min_net is not None
            and budget.max_net is not None
            and budget.min_net > budget.max_net
        ):
            problems.append(f"{key}: min_net {budget.min_net} > max_net {budget.max_net}")
        if budget.max_gross is not None and gross is not None and budget.max_gross > gross:
            problems.append(
                f"{key}.max_gross: {budget.max_gross} is above the book's exposure.gross.max ({gross})"
            )
        if budget.max_gross is not None:
            for side, value in (("min_net", budget.min_net), ("max_net", budget.max_net)):
                if value is not None and abs(value) > budget.max_gross:
                    problems.append(
                        f"{key}.{side}: {value} lies outside ±max_gross ({budget.max_gross})"
                    )
    for kind in ("sector", "country", "cluster"):
        group = getattr(cs.groups, kind)
        if (
            group.max_net is not None
            and group.max_gross is not None
            and group.max_net > group.max_gross
        ):
            problems.append(
                f"groups.{kind}.max_net: {group.max_net} above max_gross ({group.max_gross})"
            )
    both = sorted(set(cs.restricted.reduce_only) & set(cs.restricted.close))
    if both:
        problems.append(f"restricted: listed as both reduce_only and close: {', '.join(both)}")
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
        ("groups.sector.tier", cs.groups.sector.tier),
        ("groups.country.tier", cs.groups.country.tier),
        ("groups.cluster.tier", cs.groups.cluster.tier),
        ("factors.tier", cs.factors.tier),
        ("liquidity.position_tier", cs.liquidity.position_tier),
        ("liquidity.volatility_tier", cs.liquidity.volatility_tier),
        ("risk.tier", cs.risk.tier),
        ("restricted.close_tier", cs.restricted.close_tier),
        *((f"strategies.{k}.tier", v.tier) for k, v in cs.strategies.items()),
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
