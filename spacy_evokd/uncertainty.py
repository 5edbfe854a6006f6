"""The student's information need per text (LLKD's student signal), in [0, 1]: each task's
``uncertainty`` (tasks/<task>.py) computes it from the measures here.

entropy:   normalised predictive entropy H(p) / log K of a class distribution (textcat).
marginal:  over candidate (span, label) marginals p, the largest 1 - |2p - 1| (1 at p = 0.5,
           0 at p in {0, 1}) (ner, from a beam over the student's own ``ner`` component).
"""

import math
from typing import Dict, Sequence


def entropy(probs: Sequence[float]) -> float:
    total = sum(probs)
    if total <= 0 or len(probs) < 2:
        return 0.0
    h = -sum((p / total) * math.log(p / total) for p in probs if p > 0)
    return h / math.log(len(probs))


def marginal_uncertainty(marginals: Dict) -> float:
    return max((1.0 - abs(2.0 * p - 1.0) for p in marginals.values()), default=0.0)
