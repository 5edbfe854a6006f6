"""`python -m spacy_evokd estimate`: the expected teacher tokens and cost of a configured run,
before it starts.

Prompts are the real templates rendered with the seed data standing in for the examples the
teacher will see (max_examples_shown of each kind); tokens are ~4 characters each. Answers are
sized from what each prompt asks for: an analysis of at most 120 words, n_hard + n_easy texts of
the seed's average length with a label each, one label (textcat) or a short entity list (ner) per
text.

Prompts grow from round to round, up to their caps, and so does the estimate: the history review
shows the analyses of the last ``history_window`` rounds and the earlier ones of this round
(untrusted.bound_history: HISTORY_MAX_CHARS), and the generation prompt shows the texts already
written (teachers/llm.recent_texts: seed + earlier rounds + this round's, SHOWN_TEXTS of at most
SHOWN_TEXT_CHARS each). ``by_round`` has every round, ``per_round`` the costliest one (the last),
``longest_prompt_tokens`` the largest single request's prompt (system + chat so far).
It is an estimate: real answers vary, and a rerun that hits the cache costs nothing.
"""

from pathlib import Path
from typing import Any, Dict, Optional

from .config import load_config, resolve_evokd
from .data import doc_to_gold_sample, read_docbin
from .situations import situations
from .ty import Judged, PromptedTeacher, Usage

ANALYSIS_ANSWER_TOKENS = 200  # "at most 120 words" (~160 tokens) and some margin
ANALYSIS_ANSWER_CHARS = 4 * ANALYSIS_ANSWER_TOKENS  # an analysis as replayed in the history review


def _tok(text: str) -> int:
    return max(1, len(text) // 4)


def estimate(
    config_path: Path, overrides: Optional[Dict[str, Any]] = None, teacher: Optional[Path] = None
) -> Dict[str, Any]:
    config = load_config(config_path, overrides or {}, teacher=teacher)
    s, t = resolve_evokd(config)
    rounds = s.rounds
    if t.simulated or not isinstance(t, PromptedTeacher):
        return {
            "teacher": t.name,
            "simulated": True,
            "rounds": rounds,
            "per_round": Usage().to_dict(),
            "total": Usage().to_dict(),
            "by_round": [],
            "longest_prompt_tokens": 0,
        }
    task = s.task_object
    seed = [doc_to_gold_sample(d, task) for d in read_docbin(config.interpolate()["paths"]["train"])]
    model = getattr(t, "model", None)
    price_in, price_out = getattr(model, "price_in", 0.0), getattr(model, "price_out", 0.0)
    calls = _RoundCalls(s, t, task, seed)
    by_round, longest = [], 0
    total = Usage(estimated=True)
    for n in range(1, rounds + 1):
        usage = Usage(estimated=True)
        for prompt, answer in calls.round(n):
            usage.add(Usage(requests=1, prompt_tokens=prompt, completion_tokens=answer))
            longest = max(longest, prompt)
        usage.cost = (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6
        by_round.append(usage.to_dict())
        total.add(usage)
    per_round = by_round[-1] if by_round else Usage(estimated=True).to_dict()
    return {
        "teacher": t.name,
        "simulated": False,
        "rounds": rounds,
        "per_round": per_round,
        "total": total.to_dict(),
        "by_round": by_round,
        "longest_prompt_tokens": longest,
    }


class _RoundCalls:
    """(prompt tokens, answer tokens) of each request of a round, as the loop would send them
    when every proposed text is accepted (the most text the prompts can be shown)."""

    def __init__(self, s, t, task, seed):
        self.s, self.t = s, t
        shown = [Judged(x, x) for x in seed[: s.max_examples_shown]]
        self.system = t.render("system")
        self.analysis_values = dict(
            per_label={l: {"p": 0.5, "r": 0.5, "f": 0.5, "support": 10} for l in s.labels},
            overall={k: 0.5 for k in task.main_score_keys},
            confusions=[],
            evaluated_on="the last batch",
            wrong=[j.to_dict(task) for j in shown],
            correct=[j.to_dict(task) for j in shown] if s.show_correct else [],
        )
        self.n = s.n_hard + s.n_easy
        avg = sum(len(x.text) for x in seed) / max(1, len(seed))
        # stand-ins for the texts written so far: distinct, of the seed's average length
        self.text = lambda i: (f"text {i} " + "x" * max(0, int(avg) - 8))[: max(8, int(avg))]
        self.seed_texts = [x.text for x in seed]
        self.per_text = task.answer_tokens  # tokens of one text's answer (a label, an entity list)
        self.gen_out = self.n * (int(avg / 4) + 6 + self.per_text) + 10  # each text comes with its (intended) label
        self.label_in = _tok(self.system) + _tok(
            t.render("label", texts=[x.text for x in seed[: self.n]] or ["x"] * self.n)
        )
        self.label_out = self.n * self.per_text + 4

    def round(self, n: int):
        from .teachers.llm import recent_texts
        from .untrusted import bound_history

        s = self.s
        per_round = s.analyses_per_round
        earlier = [
            f"Round {m}: " + "x" * ANALYSIS_ANSWER_CHARS
            for m in range(max(1, n - s.history_window), n)
            for _ in range(per_round)
        ]
        written = self.seed_texts + [self.text(i) for i in range((n - 1) * per_round * self.n)]
        for i in range(per_round):
            if s.analysis == "none":  # plain generation: a short request per label, no analysis
                label = s.labels[i % len(s.labels)]
                yield _tok(self.system) + _tok(self.t.render("write", n=self.n, label=label)), self.gen_out
                if s.separate_labelling:
                    yield self.label_in, self.label_out
                continue
            in_round = [f"Round {n}: " + "x" * ANALYSIS_ANSWER_CHARS] * i
            history = bound_history(earlier + in_round) if s.review_history else []
            analysis_in = _tok(self.system) + _tok(self.t.render("analysis", history=history, **self.analysis_values))
            yield analysis_in, ANALYSIS_ANSWER_TOKENS
            gen_prompt = self.t.render(
                "generate",
                n_hard=s.n_hard,
                n_easy=s.n_easy,
                with_labels=not s.separate_labelling,
                shown_texts=recent_texts(written, n=self.t.written_texts_shown),
                situations=situations(s.n_hard + s.n_easy, i) if getattr(self.t, "situation_hints", False) else [],
            )
            yield analysis_in + ANALYSIS_ANSWER_TOKENS + _tok(gen_prompt), self.gen_out
            if s.separate_labelling:
                yield self.label_in, self.label_out
            written += [self.text(len(written) + k) for k in range(self.n)]
