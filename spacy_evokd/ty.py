"""The shared value types, the protocols (task, teacher, chat model, budget) and the error base of spacy-evokd.

One module, like spacy-llm's ``ty.py``: the loop, the student, the selection, the teachers, the
transport and the tasks all import *from here*, never from each other, for what they exchange.
Kept free of spaCy imports (only annotations mention spaCy types): the transport and the run
files use it, and the package's entry points must stay cheap to import.

Teacher calls (the EvoKD round):

1. ``begin_round(ctx)``           the round starts: round number, run seed, texts already used,
                                  the budget to check before every request
2. ``analyse(report, history)``   -> Analysis   (free-text weakness analysis, opens a chat)
3. ``propose(analysis, n_hard, n_easy, with_labels)`` -> Proposal (new inputs, same chat)
4. ``label(texts)``               -> Labelled   (labels for those inputs, a fresh chat)
"""

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Hashable, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

# (start_char, end_char, label)
CharSpan = Tuple[int, int, str]


class EvokdError(Exception):
    """Base of every error a user is meant to read: one line naming the file, setting or server
    at fault. The CLI prints these without a traceback; anything else is a bug."""


class ConfigError(EvokdError, ValueError):
    """A config that can't run: a bad [evokd] setting, a missing file or section. Here, not in
    config.py, because the registered functions that config.py resolves raise it too."""


class BudgetExceeded(EvokdError, RuntimeError):
    """Raised by a Budget before a request that the run can't afford; the message says which
    budget. ``per_round``: a round's budget (the round ends, the run goes on)."""

    def __init__(self, message: str, per_round: bool = False):
        super().__init__(message)
        self.per_round = per_round


# ---------------------------------------------------------------------------- values


@dataclass
class Sample:
    """One labelled (or to-be-labelled) text. ``annotation`` is the task's own value, None when the
    text has none yet (textcat: the label; textcat_multilabel: the sorted list of its labels; ner:
    character spans, possibly empty): only its Task reads or writes it.
    ``intent`` is what the teacher meant it to be ("hard" / "easy"), not a training signal.
    """

    text: str
    annotation: Any = None
    intent: Optional[str] = None
    confidence: Optional[float] = None
    confidence_method: Optional[str] = None
    # grounded generation: the label the rewrite aims at (the labelling call must give it)
    target: Optional[str] = None

    def to_dict(self, task: "Task") -> Dict[str, Any]:
        """The JSON form (round records, prompts): the annotation under the task's
        ``annotation_key``, as records have always stored it."""
        out: Dict[str, Any] = {"text": self.text}
        out[task.annotation_key] = None if self.annotation is None else task.annotation_to_json(self.annotation)
        out.update(intent=self.intent, confidence=self.confidence, confidence_method=self.confidence_method)
        return out

    @classmethod
    def from_dict(cls, d: Dict[str, Any], task: "Task") -> "Sample":
        """The inverse of ``to_dict``; records that stored every task's key (label, labels,
        entities, the others None) read the same way."""
        value = d.get(task.annotation_key)
        return cls(
            d["text"],
            None if value is None else task.annotation_from_json(value),
            d.get("intent"),
            d.get("confidence"),
            d.get("confidence_method"),
        )


@dataclass
class Judged:
    """A sample with the teacher's (or gold) annotation and the student's prediction."""

    gold: Sample
    pred: Sample

    def to_dict(self, task: "Task") -> Dict[str, Any]:
        """The JSON form: round records' feedback, and what the analysis prompt renders."""
        return {"gold": self.gold.to_dict(task), "pred": self.pred.to_dict(task)}

    @classmethod
    def from_dict(cls, item: Dict[str, Any], task: "Task") -> "Judged":
        return cls(Sample.from_dict(item["gold"], task), Sample.from_dict(item["pred"], task))


@dataclass
class WeaknessReport:
    """What the teacher is shown about the student (built by ``weakness.py``)."""

    task: str  # the task's name (prompts and reports show it)
    labels: List[str]
    per_label: Dict[str, Dict[str, float]]  # label -> {"p", "r", "f", "support"}
    overall: Dict[str, float]  # e.g. {"macro_f": .., "accuracy": ..} or {"ents_f": ..}
    correct: List[Judged]
    wrong: List[Judged]
    # (gold label, predicted label) -> count; for ner "O" stands for a missed/spurious entity
    confusions: Dict[Tuple[str, str], int] = field(default_factory=dict)
    evaluated_on: str = ""  # "seed" / "round_003 batch" — shown in the prompt and the report


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass
class Usage:
    """Token usage of teacher calls; ``estimated`` when the model did not report tokens."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: int = 0  # requests answered from the run's response cache
    estimated: bool = False
    # prompt tokens the server reused from its prompt cache (OpenAI's
    # usage.prompt_tokens_details.cached_tokens, llama.cpp's timings.cache_n): not really computed
    prompt_cached: int = 0
    seconds: float = 0.0  # wall seconds the server took (0 for cache hits): on a local server, the cost

    def add(self, other: "Usage") -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.cached += other.cached
        self.estimated = self.estimated or other.estimated
        self.prompt_cached += other.prompt_cached
        self.seconds += other.seconds

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> Dict[str, float]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost": round(self.cost, 6),
            "cached": self.cached,
            "estimated": self.estimated,
            "prompt_cached": self.prompt_cached,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Analysis:
    text: str
    # the chat so far (prompt 1 + answer); generation continues this chat
    conversation: List[Message] = field(default_factory=list)
    # label -> weight of attention the analysis asks for (used by the simulated teacher)
    focus: Dict[str, float] = field(default_factory=dict)


@dataclass
class Anchor:
    """A real pool text grounded generation asks to be rewritten toward ``target``: the label the
    student confuses with ``confused`` (None where it showed no confusion to aim at)."""

    text: str
    target: str
    confused: Optional[str] = None


@dataclass
class Proposal:
    """Inputs the teacher proposed. With ``with_labels`` (the "no separate labelling"
    ablation) the samples already carry their annotation."""

    samples: List[Sample]
    rejected: Counter = field(default_factory=Counter)
    raw: str = ""


@dataclass
class Labelled:
    samples: List[Sample]  # in input order; texts the teacher failed to label are left out
    rejected: Counter = field(default_factory=Counter)
    raw: str = ""
    # texts a budget left unasked after the first request (the budget, raised again by the loop)
    unasked: List[str] = field(default_factory=list)
    budget: Optional["BudgetExceeded"] = None


@dataclass
class ChatResult:
    """One chat-completion request's answer (``n`` choices), as models/openai_compatible.py returns it.

    ``logprobs``: per choice, a list of (token, logprob, [(alt_token, alt_logprob), ...]) or None
    when not asked for / not returned by the server.
    """

    texts: List[str]
    usage: Usage
    logprobs: Optional[List[List[Tuple[str, float, List[Tuple[str, float]]]]]] = None
    finish_reasons: List[str] = field(default_factory=list)
    cached: bool = False


# ---------------------------------------------------------------------------- the round's context


@runtime_checkable
class Budget(Protocol):
    def check(self, pending: Usage) -> None:
        """Before each teacher request: raise BudgetExceeded when the usage booked so far plus
        ``pending`` (what the teacher used since its last drain) reaches a limit."""
        ...


class Unlimited:
    """The budget of a teacher used outside a run (tests, `select`): never exceeded."""

    def check(self, pending: Usage) -> None:
        return None


@dataclass
class RoundContext:
    """What a teacher is told when a round starts (``Teacher.begin_round``)."""

    round: int
    seen_texts: Sequence[str] = ()  # seed + earlier rounds' texts: never to be written again
    run_seed: int = 0  # [evokd] seed: request seeds derive from it, so a redone round repeats itself
    budget: Budget = field(default_factory=Unlimited)
    # the student the round starts from (a pipeline directory; None outside a run). Product
    # teachers only see the student through the WeaknessReport; benchmark baselines read it.
    student: Optional[Path] = None


# ---------------------------------------------------------------------------- protocols


@runtime_checkable
class Task(Protocol):
    """What a task must have (one module per task under ``tasks/``; ``tasks.get_task(name)``):
    the loop, student, validator, parser, teachers, selection and report call these and never
    look at the task's name. A task whose docs carry a *set* of labels (multi-label textcat)
    fits: samples, keys, classes and scores are the task's own. ``tasks/base.py``'s TaskBase,
    ChoiceTask and SpanTask give shared defaults of much of it.

    Optional capabilities, each a protocol of its own that callers test with ``isinstance``
    (a task without one still runs the loop): ``Reviewable`` (review files: `export` and
    `import-review`), ``CountScored`` (a main score of summed counts: a faster bootstrap in the
    report), ``OwnTemplates`` (prompt templates of its own). The type check in .ci/run (mypy,
    ``tasks/conformance.py``) proves each shipped task has this and the capabilities it claims."""

    name: str  # the [evokd] task value; also the middle part of prompt template names
    kind: str  # what the task is, in words ("text classification"): the system prompt names it
    metric_name: str  # "macro-F1", "entity F1": progress lines, reports, benchmarks
    main_score_keys: Tuple[str, ...]  # the headline keys of ``score`` (`evaluate` prints them)
    answer_tokens: int  # about how many tokens one text's answer takes (`estimate`)
    label_unit: str  # what carries one label, in messages: "example", "entity"
    annotation_key: str  # the name of ``Sample.annotation`` in JSON: round records, prompts ("label")

    # -- the annotation (``Sample.annotation``: its type and meaning are the task's)
    def annotation_to_json(self, annotation: Any) -> Any:
        """A (not None) annotation as JSON (round records, the analysis prompt)."""
        ...

    def annotation_from_json(self, value: Any) -> Any:
        """The inverse of ``annotation_to_json`` (JSON has no tuples)."""
        ...

    def shift(self, annotation: Any, offset: int) -> Any:
        """The annotation of the text with ``offset`` characters added at its start (negative:
        removed); the validator strips leading spaces and shifts what points into the text."""
        ...

    # -- data: JSONL records and gold Docs
    def record_to_sample(self, obj: Dict[str, Any], where: str, labels: Optional[Sequence[str]]) -> Sample:
        """One JSONL record -> Sample; DataError naming ``where`` (file:line) when it is bad."""
        ...

    def record_to_doc(self, nlp: Any, obj: Dict[str, Any], sample: Sample, labels: Sequence[str], where: str) -> Any:
        """The gold Doc of a JSONL record (``sample`` is its ``record_to_sample``)."""
        ...

    def doc_to_sample(self, doc: Any) -> Sample:
        """The gold annotation of a Doc."""
        ...

    def predicted_sample(self, doc: Any, nlp: Any = None) -> Sample:
        """The student's annotation of a Doc it processed (with its confidence where it has one).
        ``nlp``: the pipeline that processed it, for a reading that depends on a component's
        setting (textcat_multilabel: its ``threshold``); None: the task's default reading."""
        ...

    def doc_labels(self, doc: Any) -> List[str]:
        """The labels a gold Doc carries, one per annotation (ner: per entity)."""
        ...

    def sample_labels(self, sample: Sample) -> List[str]:
        """The distinct labels of a sample (k-shot seeds, label sets, simulated draws)."""
        ...

    def sample_class(self, sample: Sample) -> str:
        """The one class LLKD's class-wise thresholds file a sample under."""
        ...

    def annotate(self, doc: Any, sample: Sample, labels: Sequence[str]) -> Optional[str]:
        """Write the sample's annotation on ``doc`` (a Doc of its text); or the rejection reason
        (missing_label, unknown_label, misaligned_span, ...) and leave ``doc`` as it is."""
        ...

    def mislabel(self, sample: Sample, labels: Sequence[str], rng: Any) -> Sample:
        """A copy of ``sample`` with a wrong annotation (the simulated teacher's label noise)."""
        ...

    # -- judging the student
    def answer_key(self, sample: Sample) -> Hashable:
        """Equal keys = the same annotation (correctness, majority votes over sampled answers)."""
        ...

    def comparable(self, sample: Sample, labels: Sequence[str]) -> Optional[Hashable]:
        """The annotation as compared between the generation and the labelling call (None when
        it is unusable: the validator counts that)."""
        ...

    def confusions(self, judged: Sequence[Judged]) -> Dict[Tuple[str, str], int]:
        """(gold label, predicted label) -> count of the disagreements."""
        ...

    def score(self, judged: Sequence[Judged], labels: Sequence[str], lang: str) -> Dict[str, Any]:
        """Scores with ``score`` (the main metric), ``per_label`` {label: {p, r, f, support}}, ``n``."""
        ...

    def uncertainty(self, nlp: Any, texts: Sequence[str]) -> List[float]:
        """The student's uncertainty per text, in [0, 1] (LLKD's student signal)."""
        ...

    def student_pipe(self, nlp: Any) -> Optional[str]:
        """The name of ``nlp``'s component that does this task (None: not a student of it)."""
        ...

    # -- teacher answers
    def answer_schema(self, labels: Sequence[str]) -> Dict[str, Any]:
        """The JSON-schema properties of one text's annotation in an answer."""
        ...

    def parse_answer(
        self, text: str, item: Dict[str, Any], labels: Sequence[str], rejected: Counter
    ) -> Optional[Sample]:
        """An answer object's annotation of ``text`` -> Sample (None: rejected, counted)."""
        ...

    def answer_of(self, sample: Sample) -> Dict[str, Any]:
        """The annotation of ``sample`` as an answer object gives it (the inverse of
        ``parse_answer``: what a perfect teacher answers; the test server's responder uses it)."""
        ...

    def answer_from_string(self, answer: str) -> Optional[Dict[str, Any]]:
        """An answer given as a bare string ("1. billing") as an answer object, or None when the
        task's answers can't be a bare string."""
        ...

    def confidence_from_logprobs(self, logprobs: Sequence[float]) -> float:
        """The teacher's confidence in an answer from its tokens' logprobs."""
        ...

    # -- what the analysis prompt shows
    def describe(self, sample: Sample) -> str:
        """The annotation in one short line of words (the analysis prompt's wrong answers; an
        exported review line's meta.student_prediction)."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    """A teacher's model as teachers/llm.py's LLMTeacher talks to it: chat turns in, ChatResults
    out. ``models/openai_compatible.OpenAICompatible`` is one; ``models/plain.PlainPromptModel``
    wraps any other spacy-llm model (prompts in, answers out) as one."""

    name: str
    # the request-body fields the model sends with every request: the teacher adds a seed only
    # where none is set here, and caps max_tokens only where max_completion_tokens is not set
    config: Dict[str, Any]
    structured_output_downgrades: int  # forms a server refused this run
    offers_logprobs: bool  # a request can ask for logprobs (a server may still return none)

    @property
    def structured_output(self) -> Optional[str]:
        """The form an ``answer_schema`` is sent in ("json_schema", "json_object", "off"); None:
        the model takes no answer schema (its requests carry the prompt only). Read-only here (a
        property): teachers only read it, and a model whose form is always a name (a str
        attribute) is one too."""
        ...

    def chat(self, messages: List[Dict[str, str]], n: int = 1, **params: Any) -> ChatResult:
        """One request: ``messages`` ({"role", "content"}) -> ``n`` answers. ``params``: request
        fields (temperature, seed, max_tokens, logprobs, answer_schema, ``sample`` for a fresh
        answer to a repeated request)."""
        ...

    def chat_many(self, conversations: Sequence[List[Dict[str, str]]], **params: Any) -> List[ChatResult]:
        """``chat`` for each conversation, results in input order."""
        ...

    def use_cache(self, cache: Any) -> None:
        """The run's response cache (cache.ResponseCache); a model that cannot cache ignores it."""
        ...


@runtime_checkable
class CountScored(Protocol):
    """An optional capability of a Task: its main score is a function of counts summed over docs
    (ner's micro-F1: true positives, predicted, gold; textcat's macro-F1: each label's true and
    false positives and false negatives). The report's paired bootstrap then sums resampled rows
    instead of scoring each resample again (a NER resample took 15 ms; 800 per interval)."""

    def score_counts(self, judged: Sequence[Judged], labels: Sequence[str], lang: str) -> List[Tuple[int, ...]]:
        """One row of counts per judged doc (``labels``: those ``score`` is given)."""
        ...

    def score_from_counts(self, totals: Sequence[int]) -> float:
        """The main score (``score(...)["score"]``) of docs whose rows sum to ``totals``."""
        ...


@runtime_checkable
class Reviewable(Protocol):
    """An optional capability of a Task: review files (review.py: `export` / `import-review`,
    Prodigy's JSONL task format). A task without it runs the loop; `export` and `import-review`
    refuse its runs in one line."""

    def review_task(self, doc: Any, labels: Sequence[str]) -> Dict[str, Any]:
        """The annotation fields of an exported line for a gold Doc, as Prodigy's view for the task
        reads them (textcat: "label", "options", "accept"; ner: "tokens", "spans"). A "meta" key
        holds what ``reviewed_sample`` needs back (merged into the line's meta), e.g. the exported
        label, so that it can tell which of two fields a reviewer edited."""
        ...

    def review_annotation(self, sample: Sample) -> Any:
        """The sample's annotation as JSON for a person (meta.teacher_annotation, the annotation
        of a removed sample); also what an exported line's task hash covers."""
        ...

    def reviewed_sample(self, obj: Dict[str, Any], doc: Any, labels: Sequence[str], where: str) -> Sample:
        """A reviewed line's annotation of ``doc`` (its sample, exported by ``review_task``) ->
        Sample that ``annotate`` applies; DataError naming ``where`` (file:line) when it is bad."""
        ...


@runtime_checkable
class OwnTemplates(Protocol):
    """An optional capability of a Task: a folder of its own prompt templates, which LLMTeacher
    looks in before the package's (``<step>.<task name>.<version>.jinja``; a task from outside the
    package brings its prompts this way)."""

    template_dir: Path


@runtime_checkable
class Teacher(Protocol):
    """What the loop needs of a teacher; nothing else is looked up on it."""

    task: Task
    labels: List[str]
    simulated: bool  # True: no LLM is asked (reports and progress lines say so)
    name: str

    def begin_round(self, ctx: RoundContext) -> None: ...

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis: ...

    def propose(self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False) -> Proposal: ...

    def label(self, texts: Sequence[str]) -> Labelled: ...

    def rewrite(self, anchors: Sequence[Anchor]) -> Proposal:
        """Grounded generation ([evokd] grounded): each anchor's text rewritten toward its
        target, as samples with ``target`` set (unlabelled: the labelling call decides)."""
        ...

    def write(self, label: str, n: int, with_labels: bool = False) -> Proposal:
        """Plain generation ([evokd] analysis = "none"): ``n`` new texts of ``label``, no brief;
        with ``with_labels`` labelled as written, else unlabelled with ``target`` = ``label``."""
        ...

    def vote(self, texts: Sequence[str]) -> Labelled:
        """A second, independent labelling of ``texts`` ([evokd] second_vote): the labelling
        call sampled anew, not its cached answer."""
        ...

    def drain_usage(self) -> Usage:
        """Usage since the last call (the loop books it to the current round)."""
        ...

    def drain_stats(self) -> Counter:
        """Answers asked and parsed per step since the last call (empty when not counted)."""
        ...

    def round_checks(self, agreement: Counter) -> Dict[str, Any]:
        """The round's teacher-quality figures (a round record's ``teacher_checks``, made by
        records.teacher_checks from ``agreement`` and ``drain_stats``, plus the teacher's own)."""
        ...

    def use_cache(self, cache: Any) -> None:
        """The run's response cache (cache.ResponseCache); a teacher without requests ignores it."""
        ...


@runtime_checkable
class LLKDTeacher(Teacher, Protocol):
    """A teacher `select` can use: a label per text with the teacher's confidence."""

    def pseudo_label(self, texts: Sequence[str], k: int = 5) -> Labelled: ...


@runtime_checkable
class PromptedTeacher(Teacher, Protocol):
    """A teacher whose requests are rendered prompt templates: `estimate` sizes them."""

    written_texts_shown: int

    def render(self, step: str, **values: Any) -> str: ...
