"""The teacher contract and the plain data types that flow between loop, teacher and validator.

A teacher answers the three EvoKD calls:

1. ``analyse(report, history)``   -> Analysis   (free-text weakness analysis, opens a chat)
2. ``propose(analysis, n_hard, n_easy, with_labels)`` -> Proposal (new inputs, same chat)
3. ``label(texts)``               -> Labelled   (labels for those inputs, a fresh chat)

Everything here is plain Python (no spaCy objects) so that parsing and prompting can be tested
without a pipeline; ``validation.py`` turns Samples into spaCy Docs.
"""
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Sequence, Tuple, runtime_checkable

TASKS = ("textcat", "ner")

# (start_char, end_char, label)
CharSpan = Tuple[int, int, str]


class BudgetExceeded(RuntimeError):
    """Raised by a teacher's budget hook before a request that the run can't afford; the message
    says which budget. ``per_round``: a round's budget (the round ends, the run goes on)."""

    def __init__(self, message: str, per_round: bool = False):
        super().__init__(message)
        self.per_round = per_round


@dataclass
class Sample:
    """One labelled (or to-be-labelled) text.

    textcat: ``label`` is set. ner: ``entities`` holds character spans (possibly empty).
    ``intent`` is what the teacher meant it to be ("hard" / "easy"), not a training signal.
    """

    text: str
    label: Optional[str] = None
    entities: Optional[List[CharSpan]] = None
    intent: Optional[str] = None
    confidence: Optional[float] = None
    confidence_method: Optional[str] = None


@dataclass
class Judged:
    """A sample with the teacher's (or gold) annotation and the student's prediction."""

    gold: Sample
    pred: Sample


@dataclass
class WeaknessReport:
    """What the teacher is shown about the student (built by ``weakness.py``)."""

    task: str
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
    cached: int = 0
    estimated: bool = False

    def add(self, other: "Usage") -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost
        self.cached += other.cached
        self.estimated = self.estimated or other.estimated

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
        }


@dataclass
class Analysis:
    text: str
    # the chat so far (prompt 1 + answer); generation continues this chat
    conversation: List[Message] = field(default_factory=list)
    # label -> weight of attention the analysis asks for (used by the simulated teacher)
    focus: Dict[str, float] = field(default_factory=dict)


@dataclass
class Proposal:
    """Inputs the teacher proposed. With ``with_labels`` (the "no separate labelling"
    ablation) the samples already carry label/entities."""

    samples: List[Sample]
    rejected: Counter = field(default_factory=Counter)
    raw: str = ""


@dataclass
class Labelled:
    samples: List[Sample]  # in input order; texts the teacher failed to label are left out
    rejected: Counter = field(default_factory=Counter)
    raw: str = ""


@runtime_checkable
class Teacher(Protocol):
    task: str
    labels: List[str]
    simulated: bool
    name: str

    def analyse(self, report: WeaknessReport, history: Sequence[str]) -> Analysis:
        ...

    def propose(
        self, analysis: Analysis, n_hard: int, n_easy: int, with_labels: bool = False
    ) -> Proposal:
        ...

    def label(self, texts: Sequence[str]) -> Labelled:
        ...

    def drain_usage(self) -> Usage:
        """Usage since the last call (the loop books it to the current round)."""
        ...


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
