"""Where a round's teacher tokens go: the planned round budget and `source = "auto"`'s split.

StepCosts  the tokens a request of each step took lately (the last ESTIMATE_FROM requests;
           labelling per text), so the loop never starts an analysis or a generation whose texts
           cannot be labelled within the round's budget (`RunBudget.tokens_left`).
split      source = "auto": the round's samples split between "generate" and "active" by what
           each bought in the last rounds: accepted samples the student got wrong (smoothed
           error rate) per unit of cost (tokens, or requests where a teacher reports none), the
           source's value raised by the dev gain of rounds it fed, each source at least
           ``floor`` of the samples (exploration). Round 1 (no evidence) splits evenly.
"""

from collections import defaultdict, deque
from typing import Any, Deque, Dict, Optional, Sequence, Tuple

from .ty import BudgetExceeded, Usage

ESTIMATE_FROM = 3  # requests per step the estimate averages
SOURCES = ("generate", "active")
LOOKBACK = 2  # rounds whose purchases decide the next split
# ledger steps -> the source whose tokens they are
STEP_SOURCE = {
    "analysis": "generate",
    "generate": "generate",
    "rewrite": "generate",
    "label": "generate",
    "label_vote": "generate",
    "active_label": "active",
    "active_label_vote": "active",
}


def cost_of(usage: Usage, slots: int) -> float:
    """Tokens, or the samples asked for where a teacher spends none (the simulated one: its
    requests are not comparable between sources)."""
    return float(usage.total_tokens or slots)


class StepCosts:
    """Recent tokens per request of each step (per text for labelling steps)."""

    def __init__(self) -> None:
        self._seen: Dict[str, Deque[float]] = defaultdict(lambda: deque(maxlen=ESTIMATE_FROM))

    def observe(self, step: str, usage: Usage, texts: int = 1) -> None:
        if usage.requests and texts > 0:
            self._seen[step].append(usage.total_tokens / texts)

    def estimate(self, step: str, texts: int = 1) -> float:
        """0 until a request of the step has been seen (the first one is never refused)."""
        seen = self._seen.get(step)
        return sum(seen) / len(seen) * texts if seen else 0.0


def vote_tokens(costs: StepCosts, texts_per_step: Dict[str, int], asked: int, checked: int) -> float:
    """[evokd] second_vote: the tokens the votes on a call's labelled texts are expected to cost:
    the share of labelled texts found in doubt so far ((asked + 1) / (checked + 2): one half
    before any were checked) x a vote's tokens per text (the labelling step's until a vote has
    been seen: a vote is the same request at another temperature)."""
    share = (asked + 1) / (checked + 2)
    total = 0.0
    for step in ("label", "active_label"):
        texts = texts_per_step.get(step, 0)
        if texts:
            per_text = costs.estimate(f"{step}_vote") or costs.estimate(step)
            total += per_text * texts * share
    return total


def planned_stop(limits: Sequence[Tuple[str, int, int]], need: float, what: str) -> Optional[BudgetExceeded]:
    """Why ``what`` (estimated at ``need`` tokens) is not started: the first of ``limits``
    ((name, limit, tokens left), RunBudget.tokens_left) it does not fit in, as the
    BudgetExceeded it would run into (``per_round`` for a round's limit); None when it fits."""
    for name, limit, left in limits:
        if need > left:
            return BudgetExceeded(
                f"token budget reached ({name}={limit}, planned: {what} needs ~{need:.0f} tokens, {left} left)",
                name.endswith("_per_round"),
            )
    return None


def split(
    slots: int, per_request: int, history: Sequence[Dict[str, Any]], floor: float, has_pool: bool
) -> Dict[str, Any]:
    """The round's decision: {"generate": samples, "active": samples, "value": per source,
    "why": one line}. ``history``: earlier rounds' ``sources`` records, oldest first (each
    {source: {"cost", "accepted", "wrong"}, "dev_gain"}); generation gets whole requests of
    ``per_request`` samples."""
    if not has_pool:
        return {"generate": slots, "active": 0, "value": {}, "why": "no pool: generation alone"}
    value = _values(history[-LOOKBACK:])
    if not value:
        share = 0.5
        why = "no evidence yet: an even split"
    else:
        total = sum(value.values())
        raw = value["generate"] / total if total > 0 else 0.5
        share = floor + (1 - 2 * floor) * raw
        why = (
            f"value per cost generate {value['generate']:.4g}, active {value['active']:.4g} "
            f"(accepted the student got wrong per cost x (1 + dev gain)); floor {floor:.0%}"
        )
    requests = int(round(share * slots / per_request)) if per_request else 0
    if share >= floor > 0 and slots >= per_request:
        requests = max(requests, 1)  # the floor buys at least one generation request
    gen = min(slots, requests * per_request)
    return {
        "generate": gen,
        "active": slots - gen,
        "generate_share": round(share, 4),
        "value": {k: round(v, 6) for k, v in value.items()},
        "why": why,
    }


def _values(history: Sequence[Dict[str, Any]]) -> Dict[str, float]:
    """Per source: (wrong + 1) / (accepted + 2) smoothed error rate x accepted per cost, summed
    over ``history``, times (1 + the dev gain of rounds the source fed); {} when a source has
    never been tried."""
    bought: Dict[str, float] = defaultdict(float)
    spent: Dict[str, float] = defaultdict(float)
    gain: Dict[str, float] = defaultdict(float)
    for rec in history:
        for s in SOURCES:
            got = rec.get(s) or {}
            if not got.get("cost"):
                continue
            accepted, wrong = got.get("accepted", 0), got.get("wrong", 0)
            bought[s] += accepted * (wrong + 1) / (accepted + 2)
            spent[s] += got["cost"]
            if accepted:
                gain[s] += max(0.0, rec.get("dev_gain") or 0.0)
    if not all(spent.get(s) for s in SOURCES):
        return {}
    return {s: bought[s] / spent[s] * (1 + gain[s]) for s in SOURCES}


def row_usage(row: Dict[str, Any]) -> Usage:
    """A ledger row (UsageLedger.rows) as Usage."""
    return Usage(
        requests=row["requests"],
        prompt_tokens=row["prompt_tokens"],
        completion_tokens=row["completion_tokens"],
        cost=row["cost"],
        cached=row["cached"],
        estimated=bool(row["estimated"]),
        prompt_cached=row.get("prompt_cached") or 0,
        seconds=row.get("seconds") or 0.0,
    )


def by_source(by_step: Dict[str, Usage]) -> Dict[str, Usage]:
    """A round's usage per ledger step -> per source (STEP_SOURCE)."""
    out: Dict[str, Usage] = {}
    for step, usage in by_step.items():
        if step in STEP_SOURCE:
            out.setdefault(STEP_SOURCE[step], Usage()).add(usage)
    return out
