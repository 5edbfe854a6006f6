"""Grounded generation (`[evokd] grounded = true`): which real pool texts the teacher rewrites,
and which rewrites are too close to a text already had to be worth labelling.

Why: generation works when it starts from real texts near the student's decision boundary
(PromptMix, EMNLP 2023; SynthesizRR, EMNLP 2024): each slot takes the unused pool text nearest
to the student's wrong samples of one of its worst confusions and asks for a rewrite toward the
gold label; the separate labelling call then decides (loop._label drops an off-target rewrite).
"""

from typing import List, Optional, Sequence, Set, Tuple

import numpy

from .pool_source import PoolSource
from .ty import Anchor, Sample, Task, WeaknessReport
from .weakness import label_focus


def anchors(
    pool: PoolSource, task: Task, labels: Sequence[str], shown: WeaknessReport, k: int, taken: Set[str]
) -> List[Anchor]:
    """``k`` real pool texts to rewrite: slot i aims at the i-th (cycling) of the student's
    three most frequent confusions (gold -> predicted; ner's missed entities count, spurious
    ones have no label to aim at), its anchor the unused pool text nearest to the wrong
    samples of that confusion, its target the gold label. Without a confusion: the weakest
    labels (weakness.label_focus), anchors nearest to any wrong sample (pool order without).
    ``taken`` (normalised texts already used) gets the anchors."""
    pairs = sorted(
        ((pair, c) for pair, c in shown.confusions.items() if pair[0] in labels), key=lambda pc: (-pc[1], pc[0])
    )
    aims: List[Tuple[str, Optional[str]]] = [pair for pair, _ in pairs[:3]]
    if not aims:
        focus = label_focus(shown)
        aims = [(label, None) for label in sorted(labels, key=lambda l: -focus[l])[:3]]
    out = []
    for i in range(k):
        target, confused = aims[i % len(aims)]
        evidence = [
            j.gold.text for j in shown.wrong if confused is None or (target, confused) in task.confusions([j])
        ] or [j.gold.text for j in shown.wrong]
        picks = pool.choose(evidence, [], 1, 0, taken)
        if picks:
            out.append(Anchor(picks[0][0], target, confused))
    return out


def too_similar(
    pool: PoolSource, samples: List[Sample], refs: Sequence[numpy.ndarray], max_similarity: float
) -> List[bool]:
    """Per rewrite: whether its cosine similarity (the pool embedder) to any row of ``refs`` (the
    seed, earlier rounds, this round's candidates) or to an earlier kept rewrite reaches
    ``max_similarity``."""
    new = pool.embed([x.text for x in samples])
    kept: List[numpy.ndarray] = []
    out = []
    for v in new:
        sims = [float((r @ v).max()) for r in list(refs) + ([numpy.vstack(kept)] if kept else [])]
        close = bool(sims) and max(sims) >= max_similarity
        out.append(close)
        if not close:
            kept.append(v)
    return out
