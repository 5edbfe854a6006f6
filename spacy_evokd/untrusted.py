"""Teacher text is untrusted: make it storable, and judge a weakness analysis before it is kept.

Storable text. ``storable`` is applied where teacher text enters (the transport result in
models/openai_compatible.py, plain spacy-llm answers in teachers/llm.py): a lone UTF-16
surrogate ("\\ud800", which JSON allows as an escape) can't be encoded as UTF-8, so SQLite,
JSON files and DocBins would raise on it. Lone surrogates become U+FFFD; surrogate pairs become
the character they encode. Samples containing U+FFFD are then rejected by the validator
(control_characters), so the damage is counted, never stored as training data.

Analysis rules, in the order applied (the first failing rule is the reason counted in the
round's ``rejected``):

  analysis_empty      nothing but whitespace and punctuation
  analysis_too_long   more than ANALYSIS_REJECT_CHARS characters: the server ignored the
                      request's max_tokens by far (a runaway generation); rejected whole, as
                      parsing.py rejects a huge generation (huge_answer)
  analysis_injection  instructions aimed at the model that reads it later ("ignore all previous
                      instructions", "you are now ...", chat-template role markers): analyses
                      are replayed in every later analysis prompt (the history review)
  analysis_echo       it repeats the prompt: the whole analysis (normalised) is a part of the
                      prompt, or at least half of its lines of 3+ words are. The history block
                      (the teacher's own earlier analyses) is not counted as prompt: naming the
                      same weakness again is allowed

Capping (a repair, not a rejection; counted in the round's ``repaired`` as analysis_truncated):
the request asks for at most ANALYSIS_MAX_TOKENS tokens and the prompt for 120 words, but small
models write on until the token limit cuts them mid-sentence, which can be more than
ANALYSIS_MAX_CHARS characters. ``cap_analysis`` cuts such an analysis at its last sentence or
line end within ANALYSIS_MAX_CHARS, so a talkative teacher loses its tail, not the round.

A rejected analysis is not stored in the round record and never replayed, and the generation
that would have continued its chat is not requested (a chat built on a rejected analysis can't
be trusted to target anything): the round has n_hard + n_easy fewer candidates, counted once,
by the analysis reason.

History review (``bound_history``): the teacher sees earlier analyses newest first, whole, up to
HISTORY_MAX_CHARS characters in all; older ones that don't fit are left out. Analyses read back
from round records are judged again (without the echo rule): records written before these rules
existed may hold anything.

JSON from files and answers (``parse_json``): text nested deeper than Python's recursion limit
("[" * 200000) makes ``json.loads`` raise RecursionError, not a ValueError; ``parse_json``
reports it as invalid JSON ("nested too deeply") so every reader names the file and line.
"""

import json
import re
from typing import Any, List, Optional, Sequence

ANALYSIS_MAX_CHARS = 2000  # what is kept, stored and replayed
ANALYSIS_REJECT_CHARS = 10 * ANALYSIS_MAX_CHARS  # beyond this the server ignored max_tokens
ANALYSIS_MAX_TOKENS = 400  # the analysis request's max_tokens (~1,600 characters)
# the history block of one analysis prompt, all entries together: ~5 analyses of 120 words. With
# it, the longest request (the generation call at every cap) stays within a 4k-token context
HISTORY_MAX_CHARS = 4000

_SURROGATE = re.compile("[\ud800-\udfff]")

_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:(?:all|any|the|your|my|of|these|those)\s+)*"
    r"(?:(?:previous|prior|above|earlier|preceding|former|original|system)\s+)?"
    r"(?:instructions?|prompts?|rules|directions|guidelines|commands)\b"
    r"|\b(?:ignore|disregard|forget)\s+(?:(?:all|of)\s+)*(?:everything|that)\s+(?:above|before|previously|said)\b"
    r"|\bnew\s+instructions?\s*:"
    r"|\byou\s+are\s+now\b"
    r"|\bfrom\s+now\s+on,?\s+you\b"
    r"|\bsystem\s+prompt\b"
    r"|^\s*(?:system|assistant|user)\s*:"  # a fake chat turn
    r"|<\|[a-z_]+\|>|\[/?INST\]|<<SYS>>|^\s*#{2,}\s*(?:instruction|system)",  # chat-template markers
    re.I | re.M,
)


def parse_json(text: str) -> Any:
    """``json.loads``; nesting too deep to parse is a ``json.JSONDecodeError`` ("nested too
    deeply") like any other invalid JSON, never a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def storable(text: Any) -> str:
    """``text`` as a string that encodes as UTF-8 (see the module docstring); None -> ""."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _norm(text: str) -> str:
    from .validation import normalise  # validation imports spaCy: keep this module light

    return normalise(text)


def judge_analysis(text: str, prompt: str = "", history: Sequence[str] = ()) -> Optional[str]:
    """The reason to reject an analysis (module docstring), or None to keep it. ``prompt`` is
    what the teacher was shown ("" skips the echo rule); ``history`` the entries of its history
    block, which are not counted as prompt."""
    if not any(ch.isalnum() for ch in text):
        return "analysis_empty"
    if len(text) > ANALYSIS_REJECT_CHARS:
        return "analysis_too_long"
    if _INJECTION.search(text):
        return "analysis_injection"
    if prompt and _echoes(text, prompt, history):
        return "analysis_echo"
    return None


def cap_analysis(text: str) -> str:
    """``text`` cut at its last sentence or line end within ANALYSIS_MAX_CHARS (at the limit
    itself when there is none); unchanged when it fits or is past ANALYSIS_REJECT_CHARS (the
    judge rejects that)."""
    if len(text) <= ANALYSIS_MAX_CHARS or len(text) > ANALYSIS_REJECT_CHARS:
        return text
    head = text[:ANALYSIS_MAX_CHARS]
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)|\n", head + " ")]
    cut = ends[-1] if ends and ends[-1] >= ANALYSIS_MAX_CHARS // 2 else ANALYSIS_MAX_CHARS
    return head[:cut].rstrip()


def _echoes(text: str, prompt: str, history: Sequence[str]) -> bool:
    shown = _norm(prompt)
    for entry in history:
        shown = shown.replace(_norm(entry), " ")
    if _norm(text) in shown:
        return True
    lines = [_norm(l) for l in text.splitlines() if len(l.split()) >= 3]
    return bool(lines) and sum(l in shown for l in lines) * 2 >= len(lines)


def bound_history(entries: Sequence[str], max_chars: int = HISTORY_MAX_CHARS) -> List[str]:
    """The newest entries (the end of ``entries``) whose lengths add up to at most
    ``max_chars``, in their original order; an entry is shown whole or not at all."""
    kept, used = [], 0
    for entry in reversed(entries):
        if used + len(entry) > max_chars:
            break
        kept.append(entry)
        used += len(entry)
    return kept[::-1]
