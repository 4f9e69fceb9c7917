"""The risk debate: Risky, Safe and Neutral analysts argue, the Risk Judge sets γ and γ_i."""

from riskopt.optimizer.debate.analysts import DEFAULT_ANALYSTS, Analyst, Persona, Proposal
from riskopt.optimizer.debate.debate import DebateResult, run_debate
from riskopt.optimizer.debate.features import Features, compute_features
from riskopt.optimizer.debate.llm import LanguageModelAnalyst
from riskopt.optimizer.debate.routing import fresh_state, next_speaker

__all__ = [
    "DEFAULT_ANALYSTS",
    "Analyst",
    "DebateResult",
    "Features",
    "LanguageModelAnalyst",
    "Persona",
    "Proposal",
    "compute_features",
    "fresh_state",
    "next_speaker",
    "run_debate",
]
