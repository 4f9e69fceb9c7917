"""The gate's tables: each pair's label, the targets, sleeves and actions tables with
their reasons and execution priority, and the binding constraints."""

from __future__ import annotations

from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as encode_json_string
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from riskopt.constraints.base import HardBound, Limit, ProgramData, box_duals_by_bound
from riskopt.constraints.config import ConstraintSet
from riskopt.optimizer.diff import (
    LABEL_ORDER,
    OK,
    REJECTED,
    Attribution,
    attribution_json,
    details_json,
    execution_priority,
    json_numbers,
    json_numbers_like,
    label_trades,
    percent_texts,
    reasons,
)
from riskopt.optimizer.inputs import PreparedInputs
from riskopt.optimizer.lots import Lots
from riskopt.optimizer.program import Solved
from riskopt.optimizer.result import RunInfo, string_column, string_take, text_array

DUAL_TOL = 1e-7
"""A multiplier above this marks its row or bound as binding."""


def binding_table(
    limits: list[Limit], bounds: list[HardBound], solved: Solved, data: ProgramData
) -> pd.DataFrame:
    """Policy rows and hard bounds with a multiplier above :data:`DUAL_TOL`, largest
    first (built from arrays: one frame, not one per limit)."""
    names, kinds, tiers, labels, duals, slacks = [], [], [], [], [], []
    for limit, lam, slack in zip(limits, solved.duals, solved.slacks, strict=True):
        rows = np.flatnonzero(lam > DUAL_TOL)
        if len(rows):
            names.append(np.full(len(rows), limit.name, dtype=object))
            kinds.append(np.full(len(rows), "policy", dtype=object))
            tiers.append(np.full(len(rows), limit.tier, dtype=float))
            labels.append(np.asarray(limit.labels, dtype=object)[rows])
            duals.append(lam[rows])
            slacks.append(slack[rows])
    hard = False
    for b, (upper, lower) in zip(
        bounds,
        box_duals_by_bound(bounds, solved.box_upper_dual, solved.box_lower_dual),
        strict=True,
    ):
        dual = upper + lower
        rows = np.flatnonzero(dual > DUAL_TOL)
        if len(rows):
            hard = True
            names.append(np.full(len(rows), b.name, dtype=object))
            kinds.append(np.full(len(rows), "hard", dtype=object))
            tiers.append(np.full(len(rows), np.nan))
            labels.append(np.asarray(data.tickers[rows], dtype=object))
            duals.append(dual[rows])
            slacks.append(np.zeros(len(rows)))
    if not names:
        return empty_binding()
    name, label, dual = np.concatenate(names), np.concatenate(labels), np.concatenate(duals)
    order = np.lexsort((label.astype(str), name.astype(str), -dual))  # dual first, largest
    tier = np.concatenate(tiers)[order]
    return pd.DataFrame(
        {
            "constraint": name[order],
            "kind": np.concatenate(kinds)[order],
            "tier": tier if hard else tier.astype(np.int64),  # NaN only for hard bounds
            "label": label[order],
            "dual": dual[order],
            "slack": np.concatenate(slacks)[order],
        }
    )


def empty_binding() -> pd.DataFrame:
    """The binding table with no row (its columns and kinds)."""
    return pd.DataFrame(
        {
            c: pd.Series(dtype=t)
            for c, t in [
                ("constraint", object),
                ("kind", object),
                ("tier", float),
                ("label", object),
                ("dual", float),
                ("slack", float),
            ]
        }
    )


class Labelled(NamedTuple):
    """Each pair's label, with what the names' labels are read against."""

    pairs: np.ndarray
    tol: np.ndarray
    """Each name's tolerance (weight), lots included."""
    name_scope: np.ndarray
    """Whether each name's dominant cause is a per-name limit (CAPPED, not SCALED_DOWN)."""


def label_pairs(
    data: ProgramData,
    cs: ConstraintSet,
    attribution: Attribution,
    w_final: np.ndarray,
    *,
    fallback: bool,
) -> Labelled:
    """Label every pair (:func:`label_trades`); in the fallback a decided pair moved off
    its proposal is REJECTED."""
    tol_t = cs.labels.weight_tol + cs.labels.lot_tol * data.lot_weight
    dom = attribution.dominant() if data.n else np.zeros(0, dtype=int)
    name_scope = np.array([c.scope == "name" for c in attribution.causes], dtype=bool)
    name_scope_t = name_scope[dom]
    pt = data.pair_ticker
    proposed_trade = data.w_tilde - data.w0
    final_trade = w_final - data.w0
    pair_labels = label_trades(proposed_trade, final_trade, tol_t[pt], name_scope_t[pt])
    if fallback:
        pair_labels = np.where(
            (np.abs(final_trade - proposed_trade) > tol_t[pt]) & data.has_decision,
            REJECTED,
            pair_labels,
        )
    return Labelled(pair_labels, tol_t, name_scope_t)


def decision_counts(decisions: pd.DataFrame, pair_labels: np.ndarray) -> dict[str, int]:
    """Decisions by label, as :meth:`RebalanceResult.label_counts` reads them from the
    actions table: a valid decision has its pair's label, a row rejected before the solve
    is REJECTED (counted only where it has a decision id, as in the table)."""
    pair = decisions["pair"].to_numpy()
    rejected = pair < 0
    labels = pair_labels[pair[~rejected]]
    unsolved = int(np.count_nonzero(rejected & decisions["decision_id"].notna().to_numpy()))
    return {
        str(label): int(np.count_nonzero(labels == label)) + (unsolved if label == REJECTED else 0)
        for label in LABEL_ORDER
    }


def diff_tables(
    prepared: PreparedInputs,
    labelled: Labelled,
    run: RunInfo,
    *,
    attribution: Attribution,
    lots: Lots,
    h_solved: np.ndarray | None = None,
    notes: Mapping[int, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """The targets, sleeves and actions tables of a labelled run, each row explained
    (``notes``: per name index, a sentence its reasons end with)."""
    pair_reasons, ticker_labels, ticker_texts = _explained(
        prepared.data, labelled, attribution, lots
    )
    if h_solved is not None:
        notes = _joined(lot_repair_notes(prepared.data, lots.h, h_solved), notes or {})
    if notes:
        pair_reasons, ticker_texts = _with_notes(prepared.data, notes, pair_reasons, ticker_texts)
    return {
        "targets": targets_table(prepared, run, lots, h_solved, ticker_labels, ticker_texts),
        "sleeves": sleeves_table(prepared, labelled.pairs, lots),
        "actions": actions_table(prepared, labelled, run, attribution, lots.w, pair_reasons),
    }


def _explained(
    data: ProgramData, labelled: Labelled, attribution: Attribution, lots: Lots
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each pair's reason, each ticker's label and each ticker's reason (a name is
    explained once, for its pairs and itself)."""
    pair_labels, tol_t, name_scope_t = labelled
    pt = data.pair_ticker
    h_final, w_final = lots.h, lots.w
    # Tickers' weights as text, then pairs' (a pair alone on its ticker reads the same).
    h_tilde = data.h_tilde
    p_text, f_text, c_text = (percent_texts(v) for v in (h_tilde, h_final, data.h0))

    def on_pairs(ticker_values: np.ndarray, texts: list[str]) -> tuple[np.ndarray, list[str]]:
        return ticker_values[pt], _take(texts, pt)

    pair_texts = (
        percent_texts(data.w_tilde, like=on_pairs(h_tilde, p_text)),
        percent_texts(w_final, like=on_pairs(h_final, f_text)),
        percent_texts(data.w0, like=on_pairs(data.h0, c_text)),
    )
    sentences: dict[int, str] = {}  # each name explained once, for its pairs and itself
    shared = np.bincount(pt, minlength=data.n)[pt] > 1
    whole = [""] * len(pt)
    for k, i in zip(np.flatnonzero(shared).tolist(), pt[shared].tolist(), strict=True):
        whole[k] = f"; the name as a whole: held {c_text[i]} → final {f_text[i]}"
    # Each sleeve by the causes of its own move where they were made (a sleeve alone on
    # its name has its name's), else by its name's.
    own = attribution.for_pairs(pt)
    if own is None:
        pair_reasons = reasons(
            pair_labels, attribution, pair_texts, data.has_decision, pt, sentences, whole
        )
    else:
        rows = np.arange(data.p)
        pair_reasons = reasons(pair_labels, own, pair_texts, data.has_decision, rows, {}, whole)
    own_labels = label_trades(h_tilde - data.h0, h_final - data.h0, tol_t, name_scope_t)
    ticker_labels, worst = name_labels(own_labels, pair_labels, pt)
    ticker_texts = ticker_reasons(
        data,
        attribution,
        own_labels,
        (p_text, f_text, c_text),
        h_final,
        w_final,
        pair_labels,
        pair_reasons,
        sentences,
    )
    # A name labelled by a sleeve more severe than its own trade says which, then how the
    # name as a whole moved.
    by_sleeve = np.flatnonzero(ticker_labels != own_labels)
    for i, p in zip(by_sleeve.tolist(), worst[by_sleeve].tolist(), strict=True):
        ticker_texts[i] = (
            f"{ticker_labels[i]} as its sleeve {data.pair_strategy[p]} is; the name as a "
            f"whole: {ticker_texts[i]}"
        )
    return pair_reasons, ticker_labels, ticker_texts


def name_labels(
    own: np.ndarray, pair_labels: np.ndarray, pair_ticker: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each name's label, the most severe of its own trade's and its sleeves' (REJECTED >
    CAPPED > SCALED_DOWN > OK), so that no name reads OK while a sleeve of it is CAPPED;
    and for each name, its first sleeve with the most severe label (where it has one).

    Its own trade counts too: a name whose sleeves' moves net out against its proposal
    (one sleeve scaled down, another followed) made no trade toward what was proposed
    for it, and is REJECTED although no sleeve is."""
    own_rank, pair_rank = _label_rank(own), _label_rank(pair_labels)
    worst_rank = own_rank.copy()
    np.maximum.at(worst_rank, pair_ticker, pair_rank)
    # The first pair of each name, most severe first.
    by = np.lexsort((np.arange(len(pair_rank)), -pair_rank, pair_ticker))
    first = by[np.r_[True, pair_ticker[by][1:] != pair_ticker[by][:-1]]] if len(by) else by
    worst = np.zeros(len(own), dtype=np.intp)
    worst[pair_ticker[first]] = first
    return np.asarray(LABEL_ORDER)[worst_rank], worst


def _label_rank(labels: np.ndarray) -> np.ndarray:
    """Each label's place in :data:`LABEL_ORDER` (OK < SCALED_DOWN < CAPPED < REJECTED;
    -1 for any other text), one comparison per label rather than a hash per row."""
    labels = np.asarray(labels)
    rank = np.full(len(labels), -1, dtype=np.intp)
    for k, label in enumerate(LABEL_ORDER):
        rank[labels == label] = k
    return rank


def lot_repair_notes(
    data: ProgramData, h_final: np.ndarray, h_solved: np.ndarray
) -> dict[int, str]:
    """Per name that rounding moved a whole lot or more past its solved size, a sentence
    saying so: rounding alone moves a name by less than a lot, so such a move is the
    repair that brings a row of the book or a group (gross, net) back after rounding,
    and it is an order the solve did not make (a name the solve held, traded)."""
    lot_w = data.lot_size * data.price / data.nav
    moved = (h_final - h_solved) / lot_w
    notes = {}
    for i in np.flatnonzero(np.abs(moved) >= 1.0 - 1e-6).tolist():
        k = round(float(abs(moved[i])))
        toward = "toward zero" if abs(h_final[i]) < abs(h_solved[i]) else "back toward held"
        notes[i] = (
            f"after rounding, {k} lot{'s' if k != 1 else ''} {toward} past the solve "
            "to bring a limit of the book or a group back to where the solve left it"
        )
    return notes


def _joined(first: Mapping[int, str], second: Mapping[int, str]) -> dict[int, str]:
    """Notes of both, a name in both with its two sentences in turn."""
    out = dict(first)
    for i, note in second.items():
        out[i] = f"{out[i]}; {note}" if i in out else note
    return out


def _with_notes(
    data: ProgramData, notes: Mapping[int, str], pair_reasons: list[str], texts: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """Each noted name's reason, and its pairs', followed by its note (what the minimum
    sizes did to it)."""
    texts = texts.copy()
    pair_reasons = pair_reasons[:]
    for i, note in notes.items():
        texts[i] = f"{texts[i]}; {note}"
    for p in np.flatnonzero(np.isin(data.pair_ticker, list(notes))).tolist():
        pair_reasons[p] = f"{pair_reasons[p]}; {notes[int(data.pair_ticker[p])]}"
    return pair_reasons, texts


def targets_table(
    prepared: PreparedInputs,
    run: RunInfo,
    lots: Lots,
    h_solved: np.ndarray | None,
    labels: np.ndarray,
    texts: np.ndarray,
) -> pd.DataFrame:
    """One row per ticker in execution order, indexed by ticker; names without a valid
    price are carried unchanged, last."""
    data = prepared.data
    current_shares, target_shares, h_final = prepared.current_shares, lots.shares, lots.h
    priority = priority_of(prepared, lots, run.state)
    # In execution order (the priorities are the ranks 1..N); carried names go last.
    first = np.argsort(priority)
    names = text_array(data.tickers)
    targets = pd.DataFrame(
        {
            "ticker": string_take(names, first),
            "current_position": current_shares[first],
            "target_position": target_shares[first],
            "delta_position": (target_shares - current_shares)[first],
            "current_weight": data.h0[first],
            "target_weight": h_final[first],
            "proposed_weight": data.h_tilde[first],
            "solved_weight": None if h_solved is None else h_solved[first],
            "priority": priority[first],
            "action_type": string_column(np.asarray(labels)[first]),
            "risk_reasoning_summary": string_column(texts[first]),
        }
    )
    return by_ticker(_with_carried(targets, prepared.unpriced_holdings))


def priority_of(prepared: PreparedInputs, lots: Lots, state: str) -> np.ndarray:
    """Each name's execution priority (1 first): de-risking trades first, then by urgency
    and confidence; under EMERGENCY by stand-alone risk removed."""
    data = prepared.data
    conf = np.zeros(data.n)
    np.maximum.at(conf, data.pair_ticker, np.where(data.has_decision, data.confidence, 0.0))
    # Under EMERGENCY the largest de-risking trades, by stand-alone risk removed, go first.
    risk_removed = (
        (np.abs(data.h0) - np.abs(lots.h)) * data.volatility if state == "EMERGENCY" else None
    )
    return execution_priority(
        data.tickers, prepared.current_shares, lots.shares, data.adv_shares, conf, risk_removed
    )


def by_ticker(targets: pd.DataFrame) -> pd.DataFrame:
    """``targets`` indexed by its ``ticker`` column. The index is left unnamed: the column
    stays (the CSV and the store read it), and a level of the same name would make
    ``sort_values("ticker")`` and ``merge(on="ticker")`` ambiguous."""
    targets.index = pd.Index(targets["ticker"], dtype=targets["ticker"].dtype).rename(None)
    return targets


def _with_carried(targets: pd.DataFrame, unpriced: pd.DataFrame) -> pd.DataFrame:
    """``targets`` with the holdings that have no valid price appended, unchanged."""
    if not len(unpriced):
        return targets
    carried = unpriced.groupby("ticker", as_index=False)["quantity"].sum()
    extra = pd.DataFrame(
        {
            "ticker": carried["ticker"].astype(str),
            "current_position": carried["quantity"],
            "target_position": carried["quantity"],
            "delta_position": 0.0,
            "current_weight": np.nan,
            "target_weight": np.nan,
            "proposed_weight": np.nan,
            "solved_weight": np.nan,
            "priority": np.arange(len(targets) + 1, len(targets) + 1 + len(carried)),
            "action_type": OK,
            "risk_reasoning_summary": "carried unchanged: no valid price",
        }
    )
    return pd.concat([targets, extra], ignore_index=True)


def sleeves_table(prepared: PreparedInputs, pair_labels: np.ndarray, lots: Lots) -> pd.DataFrame:
    """One row per (strategy, ticker) pair: weights and positions before and after."""
    data = prepared.data
    pt = data.pair_ticker
    return pd.DataFrame(
        {
            "strategy_id": string_column(data.pair_strategy.astype(str)),
            "ticker": string_take(text_array(data.tickers), pt),
            "current_weight": data.w0,
            "proposed_weight": data.w_tilde,
            "target_weight": lots.w,
            "current_position": (
                prepared.pair_shares
                if prepared.pair_shares is not None
                else data.w0 * data.nav / data.price[pt]
            ),
            "target_position": lots.pair_shares,
            "has_decision": data.has_decision,
            "action_type": string_column(pair_labels),
        }
    )


def actions_table(
    prepared: PreparedInputs,
    labelled: Labelled,
    run: RunInfo,
    attribution: Attribution,
    w_final: np.ndarray,
    pair_reasons: list[str],
) -> pd.DataFrame:
    """One action per decision, plus one per pair the gate changed without a decision;
    rows rejected before the solve keep their place."""
    data, d = prepared.data, prepared.decisions
    pair_labels, tol_t = labelled.pairs, labelled.tol
    pt = data.pair_ticker
    pair_of_row = d["pair"].to_numpy()
    rejected = pair_of_row < 0  # rejected before the solve: no pair
    changed = np.flatnonzero(~data.has_decision & (np.abs(w_final - data.w0) > tol_t[pt]))
    acted = np.concatenate([pair_of_row[~rejected].astype(int), changed])
    own = attribution.for_pairs(pt)
    moved = acted[pair_labels[acted] != OK]
    if own is None:  # the name's causes, keyed by pair
        by_name = attribution_json(attribution, np.unique(pt[moved]))
        explained = {int(p): by_name[int(pt[p])] for p in np.unique(moved).tolist()}
    else:
        explained = attribution_json(own, np.unique(moved))
    decision_ids = d["decision_id"].to_numpy(dtype=object)[~rejected].tolist()
    columns = _pair_actions(
        data,
        acted,
        decision_ids + [None] * len(changed),
        pair_labels,
        pair_reasons,
        w_final,
        explained,
        costs=attribution.has_costs,
    )
    # Rows rejected before the solve go back to their place (in increasing order, each
    # lands at its own index).
    records = d.loc[rejected].to_dict("records") if rejected.any() else []
    for k, rec in zip(np.flatnonzero(rejected).tolist(), records, strict=True):
        reject = rec["reject_reason"]
        row = rejected_action(rec, {"reason": f"REJECTED: {reject}", "sanity_reject": reject})
        for name, column in columns.items():
            column.insert(k, row[name])
    action_id = [f"{run.run_id}-{k:05d}" for k in range(len(columns["ticker"]))]
    return pd.DataFrame(
        {"action_id": string_column(action_id), "run_id": run.run_id, "timestamp": run.created_at}
        | {k: string_column(v) if ACTION_COLUMNS[k] is str else v for k, v in columns.items()}
    )


def ticker_reasons(
    data: ProgramData,
    attribution: Attribution,
    labels: np.ndarray,
    texts: tuple[list[str], list[str], list[str]],
    h_final: np.ndarray,
    w_final: np.ndarray,
    pair_labels: np.ndarray,
    pair_reasons: list[str],
    sentences: dict[int, str],
) -> np.ndarray:
    """Each name's reason (:func:`reasons`, a decision being any of its pairs'). A name
    held by one pair that reads as it does (label, decision, the three weights) has that
    pair's reason, word for word; the others' are written."""
    pt = data.pair_ticker
    decided = np.asarray(data.M @ data.has_decision.astype(float)) > 0
    pair_of = np.zeros(data.n, dtype=np.intp)
    pair_of[pt] = np.arange(len(pt))  # a name's pair, where it has one only
    same = (
        (np.bincount(pt, minlength=data.n) == 1)
        & (labels == pair_labels[pair_of])
        & (decided == data.has_decision[pair_of])
        & (data.h_tilde == data.w_tilde[pair_of])
        & (h_final == w_final[pair_of])
        & (data.h0 == data.w0[pair_of])
    )
    out = np.empty(data.n, dtype=object)
    out[same] = np.array(pair_reasons, dtype=object)[pair_of[same]]
    written = np.flatnonzero(~same)
    out[written] = reasons(
        labels[written],
        attribution,
        (_take(texts[0], written), _take(texts[1], written), _take(texts[2], written)),
        decided[written],
        written,
        sentences,
    )
    return out


def _take(texts: list[str], at: np.ndarray) -> list[str]:
    """``texts`` at the indices ``at``."""
    return np.array(texts, dtype=object)[at].tolist()


ACTION_COLUMNS: dict[str, type] = {
    "ticker": str,
    "decision_id": str,
    "strategy_id": str,
    "action_type": str,
    "proposed_weight": float,
    "final_weight": float,
    "current_weight": float,
    "reason": str,
    "details_json": str,
}
"""The actions table's columns after ``action_id`` (text too), in order, each with its
kind: text columns are built by :func:`string_column`."""


def rejected_action(rec: Mapping[Any, Any], details: dict[str, Any]) -> dict[str, Any]:
    """The action row of a decision rejected before the solve."""
    values = (
        rec["ticker"],
        rec["decision_id"],
        rec["strategy_id"],
        REJECTED,
        float(rec["target_weight"]),
        np.nan,
        np.nan,
        details["reason"],
        details_json(details),
    )
    return dict(zip(ACTION_COLUMNS, values, strict=True))


def _pair_actions(
    data: ProgramData,
    pairs: np.ndarray,
    decision_ids: list[Any],
    labels: np.ndarray,
    texts: list[str],
    w_final: np.ndarray,
    explained: dict[int, str],
    *,
    costs: bool,
) -> dict[str, list[Any]]:
    """The action rows of ``pairs``, column by column. Each ``details_json`` is what
    ``json.dumps(details, sort_keys=True)`` gives for the keys ``attribution`` (the
    pair's own, encoded once by :func:`attribution_json`), ``confidence``, ``cost_weight``
    (with costs), ``current_weight``, ``final_weight``, ``proposed_weight`` and
    ``reason``: what is the name's own. The run's (γ, state, exposures) are in its record
    once, not repeated here."""
    tickers = data.pair_ticker[pairs]
    label = labels[pairs].astype(str).tolist()
    reason = [texts[j] for j in pairs.tolist()]
    w0, wt, wf = data.w0[pairs], data.w_tilde[pairs], w_final[pairs]
    current, proposed, final = w0.tolist(), wt.tolist(), wf.tolist()
    decided = data.has_decision[pairs]
    confidence = np.full(len(pairs), "null", dtype=object)  # no decision: JSON null
    confidence[decided] = json_numbers(data.confidence[pairs][decided].tolist())
    cost = ', "cost_weight": true' if costs else ""
    current_text = json_numbers(current)
    proposed_text = json_numbers_like(wt, (w0, current_text))
    final_text = json_numbers_like(wf, (wt, proposed_text), (w0, current_text))
    details = [
        f'{{"attribution": {"[]" if lab == OK else explained[j]}, "confidence": '
        f"{conf}{cost}, "
        f'"current_weight": {cur}, "final_weight": {fin}, '
        f'"proposed_weight": {pro}, "reason": {encode_json_string(text)}}}'
        for j, lab, conf, cur, fin, pro, text in zip(
            pairs.tolist(),
            label,
            confidence.tolist(),
            current_text,
            final_text,
            proposed_text,
            reason,
            strict=True,
        )
    ]
    columns = (
        data.tickers[tickers].astype(str).tolist(),
        decision_ids,
        data.pair_strategy[pairs].astype(str).tolist(),
        label,
        proposed,
        final,
        current,
        reason,
        details,
    )
    return dict(zip(ACTION_COLUMNS, columns, strict=True))
