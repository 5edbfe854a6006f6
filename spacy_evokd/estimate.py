"""`python -m spacy_evokd estimate`: the expected teacher tokens and cost of a configured run,
before it starts.

Prompts are the real templates rendered with the seed data standing in for the examples the
teacher will see (max_examples_shown of each kind); tokens are ~4 characters each. Answers are
sized from what each prompt asks for: an analysis of at most 150 words, n_hard + n_easy texts of
the seed's average length, one label (textcat) or a short entity list (ner) per text.
It is an estimate: real answers vary, and a rerun that hits the cache costs nothing.
"""
from pathlib import Path
from typing import Any, Dict, Optional

from .config import load_config, resolve_evokd
from .data import doc_to_gold_sample, read_docbin
from .teachers.base import Judged, Usage

ANALYSIS_ANSWER_TOKENS = 200  # "at most 150 words"


def _tok(text: str) -> int:
    return max(1, len(text) // 4)


def estimate(config_path: Path, overrides: Optional[Dict[str, Any]] = None, teacher: Optional[Path] = None) -> Dict[str, Any]:
    config = load_config(config_path, overrides or {}, teacher=teacher)
    s, t = resolve_evokd(config)
    rounds = s.rounds
    if getattr(t, "simulated", False) or not hasattr(t, "render"):
        return {"teacher": t.name, "simulated": True, "rounds": rounds, "per_round": Usage().to_dict(),
                "total": Usage().to_dict()}  # fmt: skip
    seed = [doc_to_gold_sample(d, s.task) for d in read_docbin(config.interpolate()["paths"]["train"])]
    shown = [Judged(x, x) for x in seed[: s.max_examples_shown]]
    per_label = {l: {"p": 0.5, "r": 0.5, "f": 0.5, "support": 10} for l in s.labels}
    overall = {"macro_f": 0.5, "accuracy": 0.5, "ents_f": 0.5, "ents_p": 0.5, "ents_r": 0.5}
    history = ["x " * 150] * (s.history_window * s.analyses_per_round if s.review_history else 0)
    from .teachers.llm import _judged

    system = _tok(t.render("system"))
    analysis_in = system + _tok(t.render(
        "analysis", per_label=per_label, overall=overall, confusions=[], evaluated_on="the last batch",
        wrong=[_judged(j) for j in shown], correct=[_judged(j) for j in shown] if s.show_correct else [],
        history=history,
    ))  # fmt: skip
    n = s.n_hard + s.n_easy
    avg = sum(len(x.text) for x in seed) / max(1, len(seed))
    gen_in = analysis_in + ANALYSIS_ANSWER_TOKENS + _tok(
        t.render("generate", n_hard=s.n_hard, n_easy=s.n_easy, with_labels=not s.separate_labelling))
    per_text = 8 if s.task == "textcat" else 30
    gen_out = n * (int(avg / 4) + 6 + (0 if s.separate_labelling else per_text)) + 10
    label_in = system + _tok(t.render("label", texts=[x.text for x in seed[:n]] or ["x"] * n))
    label_out = n * per_text + 4
    calls = [(analysis_in, ANALYSIS_ANSWER_TOKENS), (gen_in, gen_out)] + ([(label_in, label_out)] if s.separate_labelling else [])
    model = getattr(t, "model", None)
    price_in, price_out = getattr(model, "price_in", 0.0), getattr(model, "price_out", 0.0)
    per_round = Usage(requests=len(calls) * s.analyses_per_round,
                      prompt_tokens=sum(c[0] for c in calls) * s.analyses_per_round,
                      completion_tokens=sum(c[1] for c in calls) * s.analyses_per_round, estimated=True)  # fmt: skip
    per_round.cost = (per_round.prompt_tokens * price_in + per_round.completion_tokens * price_out) / 1e6
    total = Usage(estimated=True)
    for _ in range(rounds):
        total.add(per_round)
    return {"teacher": t.name, "simulated": False, "rounds": rounds, "per_round": per_round.to_dict(), "total": total.to_dict()}
