"""LLMTeacher: the three EvoKD prompts over an LLM.

analyse:  system + analysis prompt (per-label scores, confusions, wrong and correct samples,
          earlier analyses)                               -> free-text weakness analysis
propose:  the same chat + generation prompt               -> n_hard + n_easy new inputs (JSON)
label:    a fresh chat + labelling prompt                 -> a label / entities per input

Prompts are Jinja templates ``prompts/<step>.<task>.<version>.jinja`` (and ``system.<version>``);
``template_dir`` puts your own files of the same names first. The model is a ty.ChatModel, or
any spacy-llm model: ours (``spacy_evokd.OpenAICompatible.v1``) gets real chat turns, token usage
and the response cache; any other spacy-llm callable is wrapped once in models/plain.py's
PlainPromptModel: the chat as one transcript prompt, tokens estimated from characters (and
marked as estimated).

Answers are untrusted (see ../untrusted.py): ours makes them storable in transport, a plain
callable's answer is made storable by its wrapper. The analysis request asks for at most
ANALYSIS_MAX_TOKENS tokens; the loop judges the analysis before using it.

For small teachers (a 1.5B model on a CPU server writes weak samples):
- the generation and labelling requests carry their answer's JSON schema (answer_schemas.py) when
  the model takes one (ours: ``structured_output``); a plain spacy-llm model gets the prompt only;
- the generation prompt shows the texts already written (``recent_texts``: the newest
  ``written_texts_shown`` <= SHOWN_TEXTS, each cut to SHOWN_TEXT_CHARS, SHOWN_TEXTS_CHARS in all)
  and asks for different ones. 0 shows none: Qwen2.5-Coder-1.5B copies what it is shown (with
  30 shown, 50-60% of its texts were duplicates of them; with none, 0-12%), so
  configs/teachers/local_server.cfg sets 0;
- the generation call gives the label it intends for each text; with separate labelling the
  labelling call decides and the loop counts the disagreements;
- each request carries a ``seed`` derived from the run seed, round, step and request index
  (``request_seed``), so a redone round sends the same requests: the cache answers them, and a
  server that honours seeds answers the same without it;
- a proposed text written before is counted as ``duplicate`` before it is sent to labelling;
- ``situation_hints`` sets each requested text in a different everyday situation (situations.py),
  drawn per request: without them the 1.5B model rewrote the same few texts round after round;
- ``examples_in_generation = false`` leaves the student's correct and wrong texts out of the
  generation chat (it keeps the scores, confusions and the analysis): the 1.5B model copied them;
- ``drain_stats`` gives the answers asked and parsed per step (the parse rate).
"""

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..answer_schemas import generation_schema, labelling_schema
from ..models.plain import PlainPromptModel
from ..parsing import parse_generation, parse_labels, parse_rewrites
from ..records import teacher_checks
from ..situations import situations
from ..ty import (
    Analysis,
    Anchor,
    BudgetExceeded,
    ChatModel,
    Labelled,
    Message,
    OwnTemplates,
    Proposal,
    RoundContext,
    Sample,
    Task,
    Usage,
    WeaknessReport,
)
from ..untrusted import ANALYSIS_MAX_TOKENS
from .votes import majority

logger = logging.getLogger("spacy_evokd.teacher")

PROMPTS_DIR = Path(__file__).parent.parent / "prompts"
STEPS = ("analysis", "generate", "label")
# templates only some settings use, read when first rendered: a task that never runs them needs none
OPTIONAL_STEPS = {"rewrite": "grounded generation", "write": 'analysis = "none"'}

# the texts already written, shown in the generation prompt (bounded: the prompt stays small)
SHOWN_TEXTS = 30
SHOWN_TEXT_CHARS = 100
SHOWN_TEXTS_CHARS = 3000
# an answer rejected whole: not parsed (the parse rate counts the others)
UNPARSED = ("malformed_answer", "huge_answer")


def recent_texts(
    texts: Sequence[str], n: int = SHOWN_TEXTS, each: int = SHOWN_TEXT_CHARS, total: int = SHOWN_TEXTS_CHARS
) -> List[str]:
    """The newest ``n`` distinct texts (the end of ``texts``), each cut to ``each`` characters
    (ending in "…"), as many as fit in ``total`` characters, oldest first."""
    out: List[str] = []
    used, keys = 0, set()
    for text in reversed(texts):
        text = " ".join(str(text).split())
        key = text.casefold()
        if not text or key in keys:
            continue
        short = text if len(text) <= each else text[: each - 1].rstrip() + "…"
        if len(out) >= n or used + len(short) > total:
            break
        out.append(short)
        keys.add(key)
        used += len(short)
    return out[::-1]


def request_seed(run_seed: int, round_id: int, step: str, index: int) -> int:
    """The ``seed`` of a request: the same for the same run seed, round, step and request index."""
    digest = hashlib.sha256(f"{run_seed}:{round_id}:{step}:{index}".encode("utf8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class LLMTeacher:
    simulated = False

    def __init__(
        self,
        model: Any,
        task: Task,
        labels: List[str],
        label_definitions: Optional[Dict[str, str]] = None,
        task_description: str = "",
        prompt_version: str = "v1",
        template_dir: Optional[str] = None,
        max_examples_shown: int = 8,
        lang: str = "en",
        written_texts_shown: int = SHOWN_TEXTS,
        situation_hints: bool = True,
        examples_in_generation: bool = True,
        label_temperature: Optional[float] = 0.0,
        label_batch: int = 4,
        vote_temperature: Optional[float] = 0.7,
    ):
        import jinja2

        # a plain spacy-llm model is wrapped here, once: below, every model is a ChatModel
        self.model: ChatModel = model if isinstance(model, ChatModel) else PlainPromptModel(model)
        self.task = task
        self.labels = list(labels)
        self.definitions = dict(label_definitions or {})
        unknown = sorted(set(self.definitions) - set(self.labels))
        if unknown:
            raise ValueError(f"label_definitions has label {unknown[0]!r}, which is not in labels {self.labels}")
        self.task_description = task_description
        self.max_examples_shown = max_examples_shown
        if not 0 <= written_texts_shown <= SHOWN_TEXTS:
            raise ValueError(f"written_texts_shown must be between 0 and {SHOWN_TEXTS}, got {written_texts_shown}")
        self.written_texts_shown = written_texts_shown
        self.situation_hints = situation_hints
        self.examples_in_generation = examples_in_generation
        if label_batch < 1:
            raise ValueError(f"label_batch must be at least 1, got {label_batch}")
        # OpenAI-compatible servers take 0..2: checked here, not answered with a 400 mid-round
        for name, t in (("label_temperature", label_temperature), ("vote_temperature", vote_temperature)):
            if t is not None and not 0 <= t <= 2:
                raise ValueError(f"{name} must be between 0 and 2 (or null), got {t}")
        self.label_temperature = label_temperature
        self.label_batch = label_batch
        self.vote_temperature = vote_temperature
        self.name = self.model.name
        self.prompt_version = prompt_version
        # a task from outside the package brings its templates (ty.OwnTemplates)
        task_dir = self.task.template_dir if isinstance(self.task, OwnTemplates) else None
        dirs = [str(d) for d in (template_dir, task_dir) if d] + [str(PROMPTS_DIR)]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(dirs),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )
        # texts are quoted as JSON strings, but not HTML-safe ones: Jinja's own tojson writes ' & < >
        # as \u0027 etc., and the teacher then copies "It\u0027s" into entity spans
        self.env.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)
        self._dirs = dirs
        self.templates: Dict[str, Any] = {}
        for step in STEPS + ("system",):  # the others (OPTIONAL_STEPS) are read when first rendered
            self.template(step)
        self._usage = Usage()
        # times each request was sent this round: a repeat asks for a fresh answer, not the cached one
        self._asked: Counter = Counter()
        # the round (its budget, checked before every request; the run seed request seeds derive from)
        self._ctx = RoundContext(round=0)
        self._sent: Counter = Counter()  # requests per step this round (the seed's request index)
        self._written: List[str] = []  # texts already written: seed + earlier rounds + this round's
        self._stats: Counter = Counter()

    def begin_round(self, ctx: RoundContext) -> None:
        """Repeats and request indexes are counted per round, so a redone round sends what the
        first try sent."""
        self._asked.clear()
        self._sent.clear()
        self._ctx = ctx
        self._written = list(ctx.seen_texts)

    def drain_stats(self) -> Counter:
        """Since the last call: answers asked and parsed per step ("generate_answers",
        "generate_parsed", "label_answers", "label_parsed")."""
        stats, self._stats = self._stats, Counter()
        return stats

    def round_checks(self, agreement: Counter) -> Dict[str, Any]:
        """The round's teacher-quality figures (records.teacher_checks) with the parse rate, and
        the structured-output form in use with its downgrades (models/openai_compatible.py)."""
        checks = teacher_checks(agreement, self.drain_stats())
        if self.model.structured_output is not None:
            checks["structured_output"] = self.model.structured_output
            checks["structured_output_downgrades"] = self.model.structured_output_downgrades
        return checks

    def _count_answer(self, step: str, rejected: Counter) -> None:
        self._stats[f"{step}_answers"] += 1
        self._stats[f"{step}_parsed"] += not any(rejected.get(r) for r in UNPARSED)

    def _takes_schema(self) -> bool:
        """Only a model with a structured-output form gets the schema (a plain spacy-llm model gets
        the prompt only)."""
        return self.model.structured_output is not None

    def _before_request(self) -> None:
        self._ctx.budget.check(self._usage)  # raises BudgetExceeded

    def use_cache(self, cache: Any) -> None:
        """The run's response cache, for our model (a plain spacy-llm model has none)."""
        self.model.use_cache(cache)

    def template(self, step: str) -> Any:
        """The step's prompt template, read when first asked for; a missing one is a ValueError
        naming the file and the folders searched."""
        if step not in self.templates:
            import jinja2

            fname = (
                f"system.{self.prompt_version}.jinja"
                if step == "system"
                else f"{step}.{self.task.name}.{self.prompt_version}.jinja"
            )
            try:
                self.templates[step] = self.env.get_template(fname)
            except jinja2.TemplateNotFound:
                needs = f" ({OPTIONAL_STEPS[step]} needs it)" if step in OPTIONAL_STEPS else ""
                raise ValueError(f"prompt template {fname} not found in {self._dirs}{needs}") from None
        return self.templates[step]

    def render(self, step: str, **values: Any) -> str:
        common = dict(
            task=self.task.name,
            task_kind=self.task.kind,
            labels=self.labels,
            definitions=self.definitions,
            task_description=self.task_description,
        )
        return self.template(step).render(**common, **values).strip() + "\n"

    # -- the three calls -------------------------------------------------------------------

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        messages = [Message("system", self.render("system")), Message("user", self._analysis_prompt(report, history))]
        text = self._chat(messages, "analysis", **self._analysis_limit()).strip()
        logger.info("analysis (%d chars) from %s", len(text), self.name)
        if not self.examples_in_generation:
            # the generation chat gets the same prompt without the student's texts: Qwen2.5-Coder-1.5B
            # copied them into its "new" texts (emotion, 2 rounds: 7 of 16 proposals were exact
            # copies of shown texts; without them 1 of 16). Costs the prompt-cache reuse of the
            # analysis prefix.
            messages = messages[:1] + [Message("user", self._analysis_prompt(report, history, examples=False))]
        return Analysis(text=text, conversation=messages + [Message("assistant", text)])

    def _analysis_prompt(self, report: WeaknessReport, history: Sequence[str], examples: bool = True) -> str:
        k = self.max_examples_shown if examples else 0
        confusions = sorted(report.confusions.items(), key=lambda kv: -kv[1])[:5]
        return self.render(
            "analysis",
            per_label=report.per_label,
            overall=report.overall,
            confusions=confusions,
            wrong=[j.to_dict(self.task) for j in report.wrong[:k]],
            correct=[j.to_dict(self.task) for j in report.correct[:k]],
            evaluated_on=report.evaluated_on,
            history=list(history),
        )

    def _analysis_limit(self) -> Dict[str, Any]:
        """max_tokens for the analysis request: ANALYSIS_MAX_TOKENS, or the config's if lower. A
        config with max_completion_tokens (OpenAI's reasoning models, where it also pays for
        hidden reasoning) is left as it is; the loop's character cap still applies."""
        config = self.model.config
        if "max_completion_tokens" in config:
            return {}
        limit = config.get("max_tokens")
        return {"max_tokens": min(int(limit), ANALYSIS_MAX_TOKENS) if limit else ANALYSIS_MAX_TOKENS}

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal:
        """New inputs, each with the annotation the teacher intends: the final one with
        ``with_labels``, else a proposal (``Sample.annotation``) the labelling call
        checks."""
        hints = situations(
            n_hard + n_easy, request_seed(self._ctx.run_seed, self._ctx.round, "situations", self._sent["generate"])
        )
        prompt = self.render(
            "generate",
            n_hard=n_hard,
            n_easy=n_easy,
            with_labels=with_labels,
            shown_texts=recent_texts(self._written, n=self.written_texts_shown),
            situations=hints if self.situation_hints else [],
        )
        schema = generation_schema(self.task, self.labels, n_hard, n_easy)
        chat = self._generation_chat(analysis, prompt)
        answer = self._chat(chat, "generate", schema=schema)
        shown = "\n".join(m.content for m in chat if m.role != "assistant")
        samples, rejected = parse_generation(answer, self.task, self.labels, with_labels, n_hard, n_easy, prompt=shown)
        self._count_answer("generate", rejected)
        samples = self._drop_copies(samples, rejected)
        self._written += [s.text for s in samples]
        logger.info("proposed %d samples (parse rejections: %s)", len(samples), dict(rejected) or "none")
        return Proposal(samples=samples, rejected=rejected, raw=answer)

    def _generation_chat(self, analysis: Analysis, prompt: str) -> List[Message]:
        """The paper's chat continues the analysis conversation; a brief written without an
        analysis call (weakness.student_brief: no conversation) opens a new chat with the brief
        and the generation prompt in one user turn."""
        if analysis.conversation:
            return analysis.conversation + [Message("user", prompt)]
        return [Message("system", self.render("system")), Message("user", analysis.text + "\n\n" + prompt)]

    def _drop_copies(self, samples: List[Sample], rejected: Counter) -> List[Sample]:
        """Texts written before (seed, earlier rounds, this round; normalised as the validator
        compares them) are counted as duplicate here, before a labelling request is paid for
        them: small teachers copy the examples they are shown."""
        from ..validation import normalise  # imports spaCy: not at module level

        seen = {normalise(t) for t in self._written}
        kept = []
        for sample in samples:
            key = normalise(sample.text)
            if key in seen:
                rejected["duplicate"] += 1
            else:
                seen.add(key)
                kept.append(sample)
        return kept

    def label(self, texts: Sequence[str]) -> Labelled:
        """Labels in requests of at most ``label_batch`` texts at ``label_temperature``: the 1.5B
        teacher labelled 48 demo tickets 36 right in fours at temperature 0, 27 in sixteens at 0
        and 22 in sixteens at 0.7 (bench/label_batch.py). A budget reached after the first
        request keeps what was labelled; the next request raises it again."""
        return self._label(texts, "label", self.label_temperature)

    def rewrite(self, anchors: Sequence[Anchor]) -> Proposal:
        """Grounded generation: one request rewriting each anchor (a real pool text) toward its
        target label (``rewrite.<task>.<version>.jinja``, read when first used: a task that
        never runs grounded needs no such template). The rewritten texts come unlabelled, each
        with its ``target``; an anchor handed back unchanged is counted (prompt_echo)."""
        prompt = self.render("rewrite", anchors=list(anchors))
        answer = self._chat([Message("system", self.render("system")), Message("user", prompt)], "rewrite")
        texts, rejected = parse_rewrites(answer, len(anchors), prompt)
        self._count_answer("rewrite", rejected)
        samples = [
            Sample(texts[i + 1], intent="hard", target=a.target) for i, a in enumerate(anchors) if i + 1 in texts
        ]
        samples = self._drop_copies(samples, rejected)
        self._written += [s.text for s in samples]
        logger.info("rewrote %d of %d anchors (rejections: %s)", len(samples), len(anchors), dict(rejected) or "none")
        return Proposal(samples=samples, rejected=rejected, raw=answer)

    def write(self, label: str, n: int, with_labels: bool = False) -> Proposal:
        """Plain generation ([evokd] analysis = "none"): one request for ``n`` texts of ``label``
        (``write.<task>.<version>.jinja``, read when first used), no brief, nothing of the
        student's shown. With ``with_labels`` each text keeps the label written with it; else it
        comes with ``target`` = ``label`` for the labelling call to confirm. Booked as "generate"."""
        prompt = self.render("write", n=n, label=label)
        schema = generation_schema(self.task, self.labels, n, 0)
        messages = [Message("system", self.render("system")), Message("user", prompt)]
        answer = self._chat(messages, "generate", schema=schema)
        samples, rejected = parse_generation(answer, self.task, self.labels, with_labels, n_hard=n, prompt=prompt)
        self._count_answer("generate", rejected)
        for sample in samples:
            sample.intent = "plain"
            if not with_labels:
                sample.target = label
        samples = self._drop_copies(samples, rejected)
        self._written += [s.text for s in samples]
        logger.info("wrote %d texts of %s (parse rejections: %s)", len(samples), label, dict(rejected) or "none")
        return Proposal(samples=samples, rejected=rejected, raw=answer)

    def vote(self, texts: Sequence[str]) -> Labelled:
        """The second labelling vote: the same prompts at ``vote_temperature`` under the "vote"
        step's request seeds, so the answer is a new sample, not the first vote's cached one (a
        model that takes no temperature, a plain spacy-llm one, is simply asked again). Cached
        under its own key: a redone round gets the same second votes."""
        return self._label(texts, "vote", self.vote_temperature)

    def _label(self, texts: Sequence[str], step: str, temperature: Optional[float]) -> Labelled:
        out = Labelled(samples=[])
        params = {} if temperature is None else {"temperature": temperature}
        for i in range(0, len(texts), self.label_batch):
            chunk = list(texts[i : i + self.label_batch])
            schema = labelling_schema(self.task, self.labels, len(chunk))
            messages = [Message("system", self.render("system")), Message("user", self.render("label", texts=chunk))]
            try:
                answer = self._chat(messages, step, schema=schema, **params)
            except BudgetExceeded as e:
                if i == 0:
                    raise
                out.unasked, out.budget = list(texts[i:]), e
                break
            samples, rejected = parse_labels(answer, chunk, self.task, self.labels)
            self._count_answer(step, rejected)
            out.samples += samples
            out.rejected.update(rejected)
            out.raw += ("\n" if out.raw else "") + answer
        return out

    def pseudo_label(self, texts: Sequence[str], k: int = 5) -> Labelled:
        """LLKD: a label per text with the teacher's confidence (``sample.confidence_method``):
        "logprobs" when the server returns them (the task's ``confidence_from_logprobs``: the
        probability of a short answer, a per-token geometric mean of a long one); otherwise
        "agreement_k": the share of k sampled answers (temperature 1) that agree with the
        majority, which is also the label kept."""
        convs = [
            [
                {"role": "system", "content": self.render("system")},
                {"role": "user", "content": self.render("label", texts=[t])},
            ]
            for t in texts
        ]
        out: List[Sample] = []
        rejected: Counter = Counter()
        schema = self._schema_param(labelling_schema(self.task, self.labels, 1))
        results = self._chat_many(convs, logprobs=True, **schema) if self.model.offers_logprobs else None
        for i, text in enumerate(texts):
            r = results[i] if results else None
            if r is not None and r.logprobs and r.logprobs[0]:
                samples, rej = parse_labels(r.texts[0], [text], self.task, self.labels)
                rejected.update(rej)
                if samples:
                    lps = [lp for _, lp, _ in r.logprobs[0]]
                    samples[0].confidence = self.task.confidence_from_logprobs(lps)
                    samples[0].confidence_method = "logprobs"
                    out.append(samples[0])
                continue
            answers = self._sample_answers(convs[i], k, schema)
            parsed = [s for a in answers for s in parse_labels(a, [text], self.task, self.labels)[0][:1]]
            if not parsed:
                rejected["unlabelled"] += 1
                continue
            sample, share = majority(parsed, self.task)
            sample.confidence, sample.confidence_method = share * len(parsed) / k, f"agreement_{k}"
            out.append(sample)
        return Labelled(samples=out, rejected=rejected)

    def _chat_many(self, convs: List[List[Dict[str, str]]], **params: Any):
        self._before_request()
        results = self.model.chat_many(convs, **params)
        for r in results:
            self._usage.add(r.usage)
        return results

    def _sample_answers(self, conv: List[Dict[str, str]], k: int, schema: Dict[str, Any]) -> List[str]:
        self._before_request()
        result = self.model.chat(conv, n=k, temperature=1.0, **schema)
        self._usage.add(result.usage)
        return result.texts

    def drain_usage(self) -> Usage:
        usage, self._usage = self._usage, Usage()
        return usage

    # -- transport -------------------------------------------------------------------------

    def _schema_param(self, schema: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        return {"answer_schema": schema} if schema is not None and self._takes_schema() else {}

    def _seed_param(self, step: str) -> Dict[str, Any]:
        """{"seed": ...} for a model whose config sets no seed of its own; counts the request."""
        index, self._sent[step] = self._sent[step], self._sent[step] + 1
        if "seed" in self.model.config:
            return {}
        return {"seed": request_seed(self._ctx.run_seed, self._ctx.round, step, index)}

    def _chat(
        self, messages: List[Message], step: str = "chat", schema: Optional[Dict[str, Any]] = None, **params: Any
    ) -> str:
        """One chat request; ``step`` names it for its seed, ``schema`` is its answer's JSON schema."""
        payload = [{"role": m.role, "content": m.content} for m in messages]
        self._before_request()
        params = {**self._seed_param(step), **params}
        # after a rejected analysis the next analysis prompt can be the very same request
        # (the in-round history did not grow): it must be a new sample, not the cached answer
        key = hashlib.sha256(json.dumps([payload, params], sort_keys=True).encode("utf8", "surrogatepass")).digest()
        sample, self._asked[key] = self._asked[key], self._asked[key] + 1
        result = self.model.chat(
            payload, **params, **self._schema_param(schema), **({"sample": sample} if sample else {})
        )
        self._usage.add(result.usage)
        return result.texts[0] if result.texts else ""
