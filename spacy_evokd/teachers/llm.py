"""LLMTeacher: the three EvoKD prompts over an LLM.

analyse:  system + analysis prompt (per-label scores, confusions, wrong and correct samples,
          earlier analyses)                               -> free-text weakness analysis
propose:  the same chat + generation prompt               -> n_hard + n_easy new inputs (JSON)
label:    a fresh chat + labelling prompt                 -> a label / entities per input

Prompts are Jinja templates ``prompts/<step>.<task>.<version>.jinja`` (and ``system.<version>``);
``template_dir`` puts your own files of the same names first. The model is any spacy-llm model:
ours (``spacy_evokd.OpenAICompatible.v1``) gets real chat turns, token usage and the response
cache; any other spacy-llm callable gets the chat as one transcript prompt, with tokens
estimated from characters (and marked as estimated).
"""
import json
import logging
import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..parsing import parse_generation, parse_labels
from .base import Analysis, Labelled, Message, Proposal, Sample, Usage, WeaknessReport

logger = logging.getLogger("spacy_evokd.teacher")

PROMPTS_DIR = Path(__file__).parent.parent / "prompts"
STEPS = ("analysis", "generate", "label")


class LLMTeacher:
    simulated = False

    def __init__(self, model: Any, task: str, labels: List[str], label_definitions: Optional[Dict[str, str]] = None,
                 task_description: str = "", prompt_version: str = "v1", template_dir: Optional[str] = None,
                 max_examples_shown: int = 8, lang: str = "en"):  # fmt: skip
        import jinja2

        self.model = model
        self.task = task
        self.labels = list(labels)
        self.definitions = dict(label_definitions or {})
        unknown = sorted(set(self.definitions) - set(self.labels))
        if unknown:
            raise ValueError(f"label_definitions has label {unknown[0]!r}, which is not in labels {self.labels}")
        self.task_description = task_description
        self.max_examples_shown = max_examples_shown
        self.name = f"{getattr(model, 'name', type(model).__name__)}"
        dirs = ([str(template_dir)] if template_dir else []) + [str(PROMPTS_DIR)]
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(dirs), undefined=jinja2.StrictUndefined,
                                      autoescape=False, keep_trailing_newline=False)  # fmt: skip
        self.templates = {}
        for step in STEPS + ("system",):
            fname = f"system.{prompt_version}.jinja" if step == "system" else f"{step}.{task}.{prompt_version}.jinja"
            try:
                self.templates[step] = self.env.get_template(fname)
            except jinja2.TemplateNotFound:
                raise ValueError(f"prompt template {fname} not found in {dirs}") from None
        self._usage = Usage()
        # the loop's budget check, called before every request (raises BudgetExceeded)
        self.budget: Optional[Callable[[Usage], None]] = None

    def _before_request(self) -> None:
        if self.budget is not None:
            self.budget(self._usage)

    # the loop hands us its response cache; our model uses it when it can
    @property
    def cache(self):
        return getattr(self.model, "cache", None)

    @cache.setter
    def cache(self, value) -> None:
        if hasattr(self.model, "cache"):
            self.model.cache = value

    def render(self, step: str, **values: Any) -> str:
        common = dict(task=self.task, labels=self.labels, definitions=self.definitions,
                      task_description=self.task_description)  # fmt: skip
        return self.templates[step].render(**common, **values).strip() + "\n"

    # -- the three calls -------------------------------------------------------------------

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        k = self.max_examples_shown
        confusions = sorted(report.confusions.items(), key=lambda kv: -kv[1])[:5]
        prompt = self.render(
            "analysis", per_label=report.per_label, overall=report.overall, confusions=confusions,
            wrong=[_judged(j) for j in report.wrong[:k]], correct=[_judged(j) for j in report.correct[:k]],
            evaluated_on=report.evaluated_on, history=list(history),
        )  # fmt: skip
        messages = [Message("system", self.render("system")), Message("user", prompt)]
        text = self._chat(messages).strip()
        logger.info("analysis (%d chars) from %s", len(text), self.name)
        return Analysis(text=text, conversation=messages + [Message("assistant", text)])

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        prompt = self.render("generate", n_hard=n_hard, n_easy=n_easy, with_labels=with_labels)
        answer = self._chat(analysis.conversation + [Message("user", prompt)])
        shown = "\n".join(m.content for m in analysis.conversation if m.role != "assistant") + "\n" + prompt
        samples, rejected = parse_generation(answer, self.task, self.labels, with_labels, n_hard, n_easy, prompt=shown)
        logger.info("proposed %d samples (parse rejections: %s)", len(samples), dict(rejected) or "none")
        return Proposal(samples=samples, rejected=rejected, raw=answer)

    def label(self, texts: Sequence[str]) -> Labelled:
        if not texts:
            return Labelled(samples=[])
        prompt = self.render("label", texts=list(texts))
        answer = self._chat([Message("system", self.render("system")), Message("user", prompt)])
        samples, rejected = parse_labels(answer, texts, self.task, self.labels)
        return Labelled(samples=samples, rejected=rejected, raw=answer)

    def pseudo_label(self, texts: Sequence[str], k: int = 5) -> Labelled:
        """LLKD: a label per text with the teacher's confidence (``sample.confidence_method``):
        "logprobs" when the server returns them: the probability of the whole answer (textcat)
        or its per-token geometric mean (ner, whose answers are long); otherwise
        "agreement_k": the share of k sampled answers (temperature 1) that agree with the
        majority, which is also the label kept."""
        convs = [[{"role": "system", "content": self.render("system")},
                  {"role": "user", "content": self.render("label", texts=[t])}] for t in texts]  # fmt: skip
        out, rejected = [], Counter()
        results = self._chat_many(convs, logprobs=True) if hasattr(self.model, "chat_many") else None
        for i, text in enumerate(texts):
            r = results[i] if results else None
            if r is not None and r.logprobs and r.logprobs[0]:
                samples, rej = parse_labels(r.texts[0], [text], self.task, self.labels)
                rejected.update(rej)
                if samples:
                    lps = [lp for _, lp, _ in r.logprobs[0]]
                    total = sum(lps) if self.task == "textcat" else sum(lps) / len(lps)
                    samples[0].confidence, samples[0].confidence_method = math.exp(total), "logprobs"
                    out.append(samples[0])
                continue
            answers = self._sample_answers(convs[i], k)
            parsed = []
            for a in answers:
                samples, _ = parse_labels(a, [text], self.task, self.labels)
                if samples:
                    parsed.append(samples[0].label if self.task == "textcat" else sorted(samples[0].entities))
            if not parsed:
                rejected["unlabelled"] += 1
                continue
            majority, share = _majority(parsed)
            sample = Sample(text, label=majority) if self.task == "textcat" else Sample(text, entities=[tuple(e) for e in majority])
            sample.confidence, sample.confidence_method = share * len(parsed) / k, f"agreement_{k}"
            out.append(sample)
        return Labelled(samples=out, rejected=rejected)

    def _chat_many(self, convs: List[List[Dict[str, str]]], **params: Any):
        self._before_request()
        results = self.model.chat_many(convs, **params)
        for r in results:
            self._usage.add(r.usage)
        return results

    def _sample_answers(self, conv: List[Dict[str, str]], k: int) -> List[str]:
        if hasattr(self.model, "chat"):
            self._before_request()
            result = self.model.chat(conv, n=k, temperature=1.0)
            self._usage.add(result.usage)
            return result.texts
        messages = [Message(m["role"], m["content"]) for m in conv]
        return [self._chat(messages) for _ in range(k)]

    def drain_usage(self) -> Usage:
        usage, self._usage = self._usage, Usage()
        return usage

    # -- transport -------------------------------------------------------------------------

    def _chat(self, messages: List[Message]) -> str:
        payload = [{"role": m.role, "content": m.content} for m in messages]
        self._before_request()
        if hasattr(self.model, "chat"):
            result = self.model.chat(payload)
            self._usage.add(result.usage)
            return result.texts[0] if result.texts else ""
        # a plain spacy-llm model: one prompt in, one answer out
        transcript = "\n\n".join(f"{m.role.upper()}:\n{m.content}" for m in messages) + "\n\nASSISTANT:\n"
        answers = [list(shards) for shards in self.model([[transcript]])]
        text = answers[0][0] if answers and answers[0] else ""
        self._usage.add(Usage(requests=1, prompt_tokens=max(1, len(transcript) // 4),
                              completion_tokens=max(1, len(text) // 4), estimated=True))  # fmt: skip
        return text


def _judged(j) -> Dict[str, Any]:
    return {"gold": asdict(j.gold), "pred": asdict(j.pred)}


def _majority(answers: List[Any]) -> Tuple[Any, float]:
    """The most common answer and its share (ties: the first seen)."""
    keys = [json.dumps(a, sort_keys=True) for a in answers]
    counts = Counter(keys)
    best = max(keys, key=lambda k: (counts[k], -keys.index(k)))
    return answers[keys.index(best)], counts[best] / len(answers)
