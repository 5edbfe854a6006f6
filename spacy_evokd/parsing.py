"""LLM answer text -> candidate Samples. Pure functions; validation.py decides what is accepted.

Lenient on form, strict on content. Stated repair rules:
  - JSON is searched for anywhere in the answer: inside Markdown fences, after commentary, or as
    the first decodable {...} / [...] (models like to chat around their JSON);
  - when there is no JSON, numbered or bulleted list items are read as the items, under "hard" /
    "easy" headings where present; other lines (commentary) are ignored;
  - labels match case-, space-, hyphen- and underscore-insensitively ("Product Question" ->
    "product_question"); a label copied in the "label: definition" form of the prompt's label
    list ("account: login", "billing - refunds", "shipping (delivery status)") is that label when
    the part before the separator is one; a label that still matches nothing is kept as is (the
    validator rejects it as unknown_label);
  - an item wrapped in a list of its own ([[{"id": 1, ...}], [{"id": 2, ...}]]) is unwrapped;
  - generation items are objects {"text", "label" | "entities"} (the annotation the teacher
    intends) or plain strings; with separate labelling the intended annotation is kept on the
    sample as a proposal (the labelling call decides) and an unusable one is dropped silently;
  - a generated text that is a placeholder of the format example ("...", "text", "<text>") is
    rejected (placeholder) before it is sent on to labelling;
  - NER entities given as strings are aligned to the text (tasks/ner.py align_entities): the k-th mention of the same string
    is the k-th occurrence, whole-word occurrences first, then case-insensitive ones; given
    offsets are used when they point at the same string. An entity that can't be found rejects
    the whole sample (unalignable_entity): a partial annotation would teach the student that the
    missing entity is not one. A list as long as the answer schema's cap (32) is rejected too
    (too_many_entities: a small model at temperature 0 can repeat one entity until max_tokens).
  - an answer longer than MAX_ANSWER_CHARS is rejected whole (huge_answer): a runaway generation
    is not worth parsing;
  - a generated text that repeats a line of the prompt (normalised) is rejected (prompt_echo).
Rejections here are counted by reason in the returned Counter.
"""

import json
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple, overload

from .answer_schemas import ANSWERS_KEY
from .ty import Sample, Task

MAX_ANSWER_CHARS = 200_000

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_ITEM = re.compile(r"^\s*(?:\d{1,3}\s*[.):\]]|[-*\u2022])\s+(.*\S)\s*$")
_NUMBERED = re.compile(r"^\s*(\d{1,3})\s*[.):\]]\s*(.*\S)\s*$")


def extract_json(text: str) -> Any:
    """The first JSON value found in ``text`` (fenced blocks first), or None."""
    if not text:
        return None
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        chunk = chunk.strip()
        try:
            return json.loads(chunk)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply (a hostile answer)
            pass
        for i, ch in enumerate(chunk):
            if ch in "{[":
                try:
                    return decoder.raw_decode(chunk, i)[0]
                except (ValueError, RecursionError):
                    continue
    return None


def _key(label: str) -> str:
    return re.sub(r"[\s_\-]+", "", label.strip().strip("\"'.`").casefold())


# "label: definition", "label - definition", "label (definition)": the prompt's label-list form
_LABEL_PREFIX = re.compile(r"^\s*([^:(\[]+?)\s*(?::|\s[-\u2013\u2014]\s|\(|\[)")


@overload
def normalise_label(label: str, labels: Sequence[str]) -> str: ...


@overload
def normalise_label(label: Any, labels: Sequence[str]) -> Optional[str]: ...


def normalise_label(label: Any, labels: Sequence[str]) -> Optional[str]:
    """Map a label the teacher wrote onto the label set; unknown labels are returned unchanged
    (stripped) so the validator can count them; non-strings give None."""
    if not isinstance(label, str):
        return None
    by_key = {_key(l): l for l in labels}
    known = by_key.get(_key(label))
    if known is None:
        prefix = _LABEL_PREFIX.match(label)
        known = by_key.get(_key(prefix.group(1))) if prefix else None
    return known if known is not None else label.strip()


def _unwrap(item: Any) -> Any:
    """[[{...}]] -> {...}: small models sometimes wrap each answer object in a list of its own."""
    while isinstance(item, list) and len(item) == 1:
        item = item[0]
    return item


def _clean_item(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _list_items(text: str) -> Dict[str, List[str]]:
    """Fallback for answers without JSON: list items, grouped under the last hard/easy heading."""
    groups: Dict[str, List[str]] = {"hard": [], "easy": []}
    current = "hard"
    for line in text.splitlines():
        m = _ITEM.match(line)
        if m:
            groups[current].append(_clean_item(m.group(1)))
            continue
        low = line.casefold()
        if "easy" in low and "hard" not in low:
            current = "easy"
        elif "hard" in low and "easy" not in low:
            current = "hard"
    return groups


def parse_generation(
    text: str,
    task: Task,
    labels: Sequence[str],
    with_labels: bool = False,
    n_hard: Optional[int] = None,
    n_easy: Optional[int] = None,
    prompt: str = "",
) -> Tuple[List[Sample], Counter]:
    """The answer to the generation prompt: {"hard": [...], "easy": [...]}. Items are strings,
    or (with_labels) objects with "text" and "label" / "entities". Extra items beyond what was
    asked for are dropped and counted (too_many); items repeating a line of ``prompt`` are
    dropped (prompt_echo)."""
    rejected: Counter = Counter()
    if text and len(text) > MAX_ANSWER_CHARS:
        rejected["huge_answer"] += 1
        return [], rejected
    data = extract_json(text)
    if isinstance(data, list):  # a bare list: treat all as hard
        data = {"hard": data}
    if not isinstance(data, dict):
        groups = _list_items(text or "")
        if not any(groups.values()):
            rejected["malformed_answer"] += 1
            return [], rejected
        data = groups
    from .validation import is_placeholder, normalise

    echoes = {normalise(l) for l in prompt.splitlines() if len(l.split()) >= 3}
    samples = []
    for intent, limit in (("hard", n_hard), ("easy", n_easy)):
        items = data.get(intent) or data.get(intent.capitalize()) or []
        if not isinstance(items, list):
            rejected["malformed_answer"] += 1
            continue
        if limit is not None and len(items) > limit:
            rejected["too_many"] += len(items) - limit
            items = items[:limit]
        for item in items:
            sample = _item_to_sample(_unwrap(item), task, labels, with_labels, rejected)
            if sample is not None and is_placeholder(sample.text):
                rejected["placeholder"] += 1
            elif sample is not None and normalise(sample.text) in echoes:
                rejected["prompt_echo"] += 1
            elif sample is not None:
                sample.intent = intent
                samples.append(sample)
    return samples, rejected


def _item_to_sample(
    item: Any, task: Task, labels: Sequence[str], with_labels: bool, rejected: Counter
) -> Optional[Sample]:
    if isinstance(item, str):
        if with_labels:
            rejected["missing_label"] += 1
            return None
        return Sample(_clean_item(item))
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
        rejected["malformed_item"] += 1
        return None
    text = _clean_item(item["text"])
    if not with_labels:  # the intended annotation, if usable, is kept as a proposal
        intended = any(key in item for key in task.answer_schema(labels))
        proposal = task.parse_answer(text, item, labels, Counter()) if intended else None
        return proposal or Sample(text)
    return task.parse_answer(text, item, labels, rejected)


def parse_labels(text: str, texts: Sequence[str], task: Task, labels: Sequence[str]) -> Tuple[List[Sample], Counter]:
    """The answer to the labelling prompt for ``texts`` (numbered from 1): a JSON list of
    {"id", "label"} / {"id", "entities"} / {"id", "labels"}, or such an object on its own; without
    ids, a list as long as ``texts`` is read in order; without JSON, lines "1. label" where the task's answer can be a bare string. Texts
    left unlabelled count as unlabelled."""
    rejected: Counter = Counter()
    if text and len(text) > MAX_ANSWER_CHARS:
        return [], Counter(huge_answer=1, unlabelled=len(texts))
    data = extract_json(text)
    if isinstance(data, dict):
        # one answer object on its own ({"id": 1, "labels": [...]}): its own list-valued answer
        # key (textcat_multilabel's "labels") is that text's annotation, not a list of answers
        if "id" in data or (ANSWERS_KEY not in data and set(data) & set(task.answer_schema(labels))):
            data = [data]
        else:
            for key in (ANSWERS_KEY, "labels", "results", "items", "texts"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
    by_id: Dict[int, Any] = {}
    if isinstance(data, list):
        data = [_unwrap(d) for d in data]
        with_ids = all(isinstance(d, dict) and "id" in d for d in data) and data
        for pos, d in enumerate(data, start=1):
            idx = _as_int(d.get("id")) if with_ids else pos
            if idx is not None and 1 <= idx <= len(texts) and idx not in by_id:
                by_id[idx] = d
        if not with_ids and len(data) != len(texts):
            by_id = {}  # positional reading is only safe when the counts agree
            rejected["malformed_answer"] += 1
    elif text:
        for line in text.splitlines():
            m = _NUMBERED.match(line)
            answer = task.answer_from_string(_clean_item(m.group(2))) if m else None
            if answer is not None and 1 <= int(m.group(1)) <= len(texts):
                by_id.setdefault(int(m.group(1)), answer)
    if not by_id and not rejected:
        rejected["malformed_answer"] += 1
    samples = []
    for idx, t in enumerate(texts, start=1):
        d = by_id.get(idx)
        if d is None:
            rejected["unlabelled"] += 1
            continue
        if isinstance(d, str):
            d = task.answer_from_string(d) or {}
        if not isinstance(d, dict):
            rejected["malformed_item"] += 1
            continue
        sample = task.parse_answer(t, d, labels, rejected)
        if sample is not None:
            samples.append(sample)
    return samples, rejected


def _as_int(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_rewrites(text: str, n: int, prompt: str = "") -> Tuple[Dict[int, str], Counter]:
    """The answer to the rewrite prompt (grounded generation): {"answers": [{"id": i, "text":
    "<rewritten text>"}]} (or a bare list of such objects) -> {id: text} for ids 1..n. Items
    with another id, no text, a placeholder, a line of ``prompt`` (the anchor handed back
    unchanged: prompt_echo) or a repeated id are dropped and counted."""
    rejected: Counter = Counter()
    if text and len(text) > MAX_ANSWER_CHARS:
        rejected["huge_answer"] += 1
        return {}, rejected
    data = extract_json(text)
    if isinstance(data, dict):
        data = data.get("answers")
    if not isinstance(data, list):
        rejected["malformed_answer"] += 1
        return {}, rejected
    from .validation import is_placeholder, normalise

    echoes = {normalise(json_text) for json_text in _quoted_lines(prompt)}
    out: Dict[int, str] = {}
    for item in data:
        item = _unwrap(item)
        i = _as_int(item.get("id")) if isinstance(item, dict) else None
        if i is None or not isinstance(item.get("text"), str):
            rejected["malformed_item"] += 1
            continue
        rewritten = _clean_item(item["text"])
        if not 1 <= i <= n or i in out:
            rejected["too_many"] += 1
        elif not rewritten or is_placeholder(rewritten):
            rejected["placeholder"] += 1
        elif normalise(rewritten) in echoes:
            rejected["prompt_echo"] += 1
        else:
            out[i] = rewritten
    return out, rejected


def _quoted_lines(prompt: str) -> List[str]:
    """The JSON strings quoted at the end of the prompt's lines (the texts it shows)."""
    out = []
    for line in prompt.splitlines():
        start = line.find(' "')
        if start >= 0 and line.rstrip().endswith('"'):
            try:
                value = json.loads(line[start + 1 :].rstrip())
            except ValueError:
                continue
            if isinstance(value, str):
                out.append(value)
    return out
