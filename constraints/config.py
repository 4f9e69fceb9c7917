"""The ``ConstraintSet``: a typed, validated model of one risk policy, loaded from TOML.

Every limit has a name (its TOML key), a value and a priority tier (1 = highest, the
last to give way). Unknown keys are errors, so a typo never silently drops a limit.

This module holds the sections that belong to no constraint family (tiers, objective,
drawdown, states, debate, sanity, labels, solver) in :class:`PolicyBase`. Each family's
section model lives in the family's own module; ``ConstraintSet`` is ``PolicyBase`` plus
one field per registered family (``pydantic.create_model`` over
:data:`~riskopt.constraints.registry.FAMILIES`), so registering a family adds its TOML
table, and its tiers, checks and state scaling are found by looping over the registry
(the model's fields: ``PolicyBase``'s, then the families' in registry order).
For mypy, a ``TYPE_CHECKING``-only declaration names the sections of the families that
callers read as attributes (``cs.position.max_weight``, ``cs.groups.sector``); a family
registered later reads its own section through ``getattr(cs, family.key)`` until it is
named there too (:meth:`~riskopt.constraints.family.Family.own`). A test checks that
the declaration names only fields the built model has.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args

from pydantic import Field, create_model, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from riskopt.constraints.errors import ConfigError
from riskopt.constraints.family import BookNames, Section, Tier
from riskopt.constraints.registry import FAMILIES
from riskopt.data.config_files import ConfigFileError, read_toml

if TYPE_CHECKING:
    from riskopt.constraints.costs import CostsConfig
    from riskopt.constraints.envelope import EnvelopeConfig
    from riskopt.constraints.exposure import ExposureConfig
    from riskopt.constraints.factors import FactorsConfig
    from riskopt.constraints.groups import GroupsConfig
    from riskopt.constraints.liquidity import LiquidityConfig
    from riskopt.constraints.position import PositionConfig
    from riskopt.constraints.restricted import RestrictedConfig
    from riskopt.constraints.risk import RiskConfig
    from riskopt.constraints.sleeves import StrategyBudget
    from riskopt.constraints.trading import TradingConfig

SETS_DIR = Path(__file__).parent / "sets"
MAX_PENALTY = 1e6
"""Largest slack penalty allowed: beyond it interior-point solvers lose accuracy."""


class TiersConfig(Section):
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


class ObjectiveConfig(Section):
    """Weights of the tracking objective and the optional trading-cost term."""

    hold_weight: float = Field(1.0, gt=0, description="tracking weight c of pairs with no decision")
    confidence_floor: float = Field(0.05, gt=0, le=1, description="c = max(confidence, floor)")
    costs: bool = Field(False, description="add κ|Δh|: half-spread plus commission")
    commission_bps: float = Field(0.0, ge=0)


class DrawdownConfig(Section):
    """Grossman–Zhou risk budget ``m(d) = max(floor, (D − d)/(D(1 − d)))`` from the NAV path.

    ``m`` multiplies the volatility cap and the gross cap; ``strategy_budget`` does the
    same to each strategy's sleeve gross budget from that strategy's own NAV path.
    """

    budget: float | None = Field(None, gt=0, lt=1)
    floor: float = Field(0.25, ge=0, le=1)
    strategy_budget: float | None = Field(None, gt=0, lt=1)


class StateSOP(Section):
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


class StatesConfig(Section):
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


class DebateConfig(Section):
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


class SanityConfig(Section):
    """Decisions beyond these are rejected as absurd before the solve."""

    max_abs_target_weight: float = Field(0.5, gt=0)


class LabelConfig(Section):
    """Tolerances of the diff: a final trade within ``weight_tol + lot_tol · lot`` is OK."""

    weight_tol: float = Field(1e-4, ge=0)
    lot_tol: float = Field(1.0, ge=0)


SolverName = Literal["STRUCTURED", "CLARABEL", "CLARABEL_CVXPY", "SCS", "OSQP", "ECOS", "PIQP"]
SOLVERS: tuple[str, ...] = get_args(SolverName)
"""The solvers a chain may name (in any case: ``"clarabel"`` is ``"CLARABEL"``)."""


class SolverConfig(Section):
    """Solvers tried in order; the de-risk-only fallback follows the last.
    ``CLARABEL_CVXPY`` is Clarabel on cvxpy's compile of the program (benchmarks/README.md,
    "Solver chain", has what each member rescues). ``STRUCTURED`` is the gate's own
    structured interior-point solver (opt-in; README, "The structured solver"): put it
    before ``CLARABEL``, which takes what it cannot."""

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

    @field_validator("chain")
    @classmethod
    def _one_runs(cls, chain: list[str]) -> list[str]:
        """A chain none of whose solvers is installed would end every run in the
        de-risk fallback: refused when the set is read."""
        problem = unrunnable_chain(chain)
        if problem:
            raise ValueError(problem)
        return chain


DIRECT_SOLVERS = ("CLARABEL", "STRUCTURED")
"""Solvers the gate runs itself (always installed); the rest run through cvxpy."""


def unrunnable_chain(chain: list[Any]) -> str | None:
    """Why no solver of ``chain`` can run (none installed), or ``None``. cvxpy is asked
    only for a chain with no solver the gate runs itself."""
    names = [s for s in chain if isinstance(s, str)]
    if len(names) < len(chain) or any(s in DIRECT_SOLVERS for s in names):
        return None  # a solver instance, or one the gate runs itself
    import cvxpy as cp

    installed = set(cp.installed_solvers())
    through = {"CLARABEL_CVXPY": "CLARABEL"}
    if any(through.get(s, s) in installed for s in names):
        return None
    return (
        f"none of the solvers {', '.join(names)} is installed, so every run would end in "
        "the de-risk fallback: install one, or put CLARABEL in the chain"
    )


class PolicyBase(Section):
    """One risk policy: every limit of the gate, with its tier (the sections of no
    family here; :data:`ConstraintSet` adds each registered family's)."""

    name: str = "unnamed"
    description: str = ""
    tiers: TiersConfig = TiersConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    drawdown: DrawdownConfig = DrawdownConfig()
    states: StatesConfig = StatesConfig()
    active_state: Literal["NORMAL", "ELEVATED", "EMERGENCY"] = "NORMAL"
    """The state this set has been tightened for (set by the gate, not by hand)."""
    debate: DebateConfig = DebateConfig()
    sanity: SanityConfig = SanityConfig()
    labels: LabelConfig = LabelConfig()
    solver: SolverConfig = SolverConfig()

    @model_validator(mode="after")
    def _consistent(self) -> PolicyBase:
        problems = consistency_problems(self)  # type: ignore[arg-type]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # -- loading -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "<dict>") -> ConstraintSet:
        """Validate a parsed TOML document; every problem in one ConfigError."""
        try:
            return ConstraintSet.model_validate(raw)
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

    def to_toml(self) -> str:
        """The set as a TOML document that :meth:`load` reads back to an equal set: every
        field, defaults included (the set as resolved), written by ``tomli_w``.

        A field with no value (``None``) is left out, as TOML has no null; it loads as
        ``None`` again unless its default is a value (``position.max_weight`` set to
        ``None`` from a database document): such a set cannot be written, and the
        ``ConfigError`` names each of those keys.
        """
        import tomllib

        import tomli_w

        raw = self.model_dump()
        text = tomli_w.dumps(_toml_ready(raw))
        lost = _differences(raw, ConstraintSet.from_dict(tomllib.loads(text)).model_dump())
        if lost:
            raise ConfigError(
                self.name, [f"{key}: has no value, which TOML cannot write" for key in lost]
            )
        return text

    @property
    def preference_penalty(self) -> float:
        """The penalty of the gate's own preferences: one step below the lowest tier."""
        return self.tiers.penalty_base / self.tiers.penalty_ratio

    def tier_penalty(self, tier: int) -> float:
        lowest = max(self.tiers.lowest, tier)
        return self.tiers.penalty_base * self.tiers.penalty_ratio ** (lowest - tier)


if TYPE_CHECKING:

    class ConstraintSet(PolicyBase):
        """One risk policy: every limit of the gate, with its tier."""

        position: PositionConfig = PositionConfig()
        liquidity: LiquidityConfig = LiquidityConfig()
        restricted: RestrictedConfig = RestrictedConfig()
        exposure: ExposureConfig = ExposureConfig()
        groups: GroupsConfig = GroupsConfig()
        factors: FactorsConfig = FactorsConfig()
        risk: RiskConfig = RiskConfig()
        strategies: dict[str, StrategyBudget] = Field(default_factory=dict)
        envelope: EnvelopeConfig = EnvelopeConfig()
        trading: TradingConfig = TradingConfig()
        costs: CostsConfig = CostsConfig()

else:
    ConstraintSet = create_model(
        "ConstraintSet",
        __base__=PolicyBase,
        __module__=__name__,
        __doc__="One risk policy: every limit of the gate, with its tier.",
        **{family.key: family.field() for family in FAMILIES if family.key is not None},
    )


@functools.lru_cache(maxsize=64)
def _parsed_toml(path: str, mtime_ns: int, size: int) -> dict[str, Any]:
    """A set file's TOML, parsed once per version of the file (keyed by its modification
    time and size): a batch of thousands of books names the same set each time."""
    return read_toml(path)


def _toml_ready(value: Any) -> Any:
    """``value`` (a model dump) with what TOML cannot hold removed: ``None`` left out of
    tables, tuples and sets written as arrays (sets sorted)."""
    if isinstance(value, dict):
        return {str(k): _toml_ready(v) for k, v in value.items() if v is not None}
    if isinstance(value, set | frozenset):
        return sorted(_toml_ready(v) for v in value)
    if isinstance(value, list | tuple):
        return [_toml_ready(v) for v in value]
    return value


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted keys at which two model dumps differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return [key for k in keys for key in _differences(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


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
    cannot support, from every family.

    Unlike a warning, an unknown sector, country, cluster or factor here is an error: a
    typo must never silently switch a limit off. Tickers are the exception
    (:func:`book_warnings`), as are strategy budgets: a firm-wide set names every
    strategy and more tickers than one book trades, and a limit on a name or strategy
    this book does not have simply does not apply.
    """
    book = BookNames(sectors, countries, clusters, factors, has_risk_model, tickers=set())
    return [p for family in FAMILIES for p in family.book_problems(cs, book)]


def book_warnings(cs: ConstraintSet, *, tickers: set[str]) -> list[str]:
    """Tickers that the set names (per-ticker overrides, restricted lists) and the book
    does not have: not an error, since a firm-wide list names more than one book holds,
    but said in the run's warnings."""
    book = BookNames(set(), set(), set(), set(), has_risk_model=False, tickers=tickers)
    return [w for family in FAMILIES for w in family.book_warnings(cs, book)]


def consistency_problems(cs: ConstraintSet) -> list[str]:
    """Contradictions between limits, each named by its TOML key: every family's own,
    then every tier setting against ``tiers.lowest``."""
    problems = [p for family in FAMILIES for p in family.consistency_problems(cs)]
    for tier_key, tier in tier_settings(cs):
        if tier > cs.tiers.lowest:
            problems.append(f"{tier_key}: tier {tier} is past tiers.lowest ({cs.tiers.lowest})")
    return problems


def tier_settings(cs: ConstraintSet) -> list[tuple[str, int]]:
    """Every tier setting of the set, ``(dotted TOML key, tier)``, family by family."""
    return [setting for family in FAMILIES for setting in family.tiers(cs)]


def _pydantic_problems(err: PydanticValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        if key == "<root>":  # the set's own checks: each problem names its key
            problems.extend(msg.split("; "))
        else:
            problems.append(f"{key}: {msg}")
    return problems
