"""The run's teacher budget ([evokd] max_tokens, max_cost and their *_per_round forms), checked
against the usage ledger: the loop hands a RunBudget to the teacher in each round's RoundContext,
and the teacher checks it before every request (ty.Budget)."""

from typing import List, Optional, Tuple

from .cache import UsageLedger
from .ty import BudgetExceeded, Usage


class RunBudget:
    def __init__(self, settings, ledger: UsageLedger, round: int):
        self.settings = settings
        self.ledger = ledger
        self.round = round

    def check(self, pending: Usage) -> None:
        """Booked usage + ``pending`` (what the current step used so far) against every limit;
        BudgetExceeded (``per_round`` for a round's limit) when one is reached."""
        run, rnd = self.ledger.totals(), self.ledger.totals(round=self.round)
        run.add(pending)
        rnd.add(pending)
        self._check(run, rnd)

    def tokens_left(self) -> List[Tuple[str, int, int]]:
        """(limit name, limit, tokens left) of the run's and this round's token limits that are set."""
        s = self.settings
        out = []
        if s.max_tokens:
            out.append(("max_tokens", s.max_tokens, max(0, s.max_tokens - self.ledger.totals().total_tokens)))
        if s.max_tokens_per_round:
            used = self.ledger.totals(round=self.round).total_tokens
            out.append(("max_tokens_per_round", s.max_tokens_per_round, max(0, s.max_tokens_per_round - used)))
        return out

    def run_exhausted(self) -> Optional[str]:
        """Why the run's own budget is used up before a round starts (None: it is not)."""
        try:
            self._check(self.ledger.totals(), None)
        except BudgetExceeded as e:
            return str(e)
        return None

    def _check(self, run: Usage, rnd: Optional[Usage]) -> None:
        s = self.settings
        tokens = [(s.max_tokens, run.total_tokens, "max_tokens")]
        costs = [(s.max_cost, run.cost, "max_cost")]
        if rnd is not None:
            tokens.append((s.max_tokens_per_round, rnd.total_tokens, "max_tokens_per_round"))
            costs.append((s.max_cost_per_round, rnd.cost, "max_cost_per_round"))
        for limit, used, what in tokens:
            if limit and used >= limit:
                raise BudgetExceeded(f"token budget reached ({what}={limit}, used {used})", what.endswith("_per_round"))
        for limit, used, what in costs:
            if limit and used >= limit:
                raise BudgetExceeded(
                    f"cost budget reached ({what}={limit}, spent {used:.4f})", what.endswith("_per_round")
                )
