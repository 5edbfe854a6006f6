"""The JSON schemas of the teacher's answers, per call and task: sent as ``response_format`` by
models/openai_compatible.py (structured outputs), so a server that takes them (OpenAI,
llama.cpp's llama-server, vLLM) can only answer in this form.

The prompts (prompts/*.jinja) describe the same forms in words and a format example, so a model
without structured outputs is asked for the same JSON; parsing.py stays the reader either way
(lenient: the schema makes answers well-formed, the parser is the safety net).

The schemas keep to what OpenAI's strict mode accepts: an object at the root, every property
required, ``additionalProperties: false`` everywhere, enums for labels and ids, and
``minItems``/``maxItems`` for the number of items asked for (small models otherwise stop early).

  generation  {"hard": [item x n_hard], "easy": [item x n_easy]}  ("easy" only when asked for)
              item: textcat {"text", "label"}; ner {"text", "entities": [{"text", "label"}]}.
              The label is the one the teacher intends; with separate labelling the labelling
              call still decides, and a disagreement is counted (validation.label_disagreements).
  labelling   {"answers": [{"id", "label"} | {"id", "entities"}] x n}, ids 1..n
"""

from typing import Any, Dict, List, Sequence

from .ty import Task

# the key of the labelling answer's list; parsing.parse_labels reads it (among others)
ANSWERS_KEY = "answers"


def json_object(properties: Dict[str, Any]) -> Dict[str, Any]:
    """An object schema as OpenAI's strict mode wants it: every property required, no others."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _array(items: Dict[str, Any], n: int) -> Dict[str, Any]:
    return {"type": "array", "items": items, "minItems": n, "maxItems": n}


def label_enum(labels: Sequence[str]) -> Dict[str, Any]:
    return {"type": "string", "enum": list(labels)}


def generation_schema(task: Task, labels: Sequence[str], n_hard: int, n_easy: int) -> Dict[str, Any]:
    """{"name", "schema"} of the generation answer (texts with the annotation the teacher intends)."""
    item = json_object({"text": {"type": "string"}, **task.answer_schema(labels)})
    groups = {"hard": _array(item, n_hard)}
    if n_easy:
        groups["easy"] = _array(item, n_easy)
    return {"name": f"evokd_generation_{task.name}", "schema": json_object(groups)}


def labelling_schema(task: Task, labels: Sequence[str], n_texts: int) -> Dict[str, Any]:
    """{"name", "schema"} of the labelling answer: one object per text, ids 1..n_texts."""
    ids: List[int] = list(range(1, n_texts + 1))
    item = json_object({"id": {"type": "integer", "enum": ids}, **task.answer_schema(labels)})
    return {"name": f"evokd_labels_{task.name}", "schema": json_object({ANSWERS_KEY: _array(item, n_texts)})}
