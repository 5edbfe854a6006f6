"""A stand-in for the LLM behind the test server: answers the EvoKD prompts (and the plain
generation and rewrite ones) from a labelled pool, so loop tests exercise the real prompts,
transport, parsing and validation.

Answers are a pure function of the request (seeded by a hash of the messages), as a cached LLM
at temperature 0 would be. With ``mischief`` it also answers like a sloppy LLM: chatter around
Markdown-fenced JSON, a label in the wrong case, an unknown label, an entity not in the text
(by the shape of the task's answer object: the responder names no task). With ``sampled_flips``
a labelling request sent at a temperature above 0 (a second vote) names another label for that
share of its texts, as a sampled answer may; the texts are kept in ``flipped``.
"""

import hashlib
import json
import random
import re
from collections import Counter
from typing import Dict, List, Optional, Set

from ..data import load_samples
from ..ty import Sample, Task

# the plain generation prompt (write.<task>.v1.jinja): its count and label
WRITE = re.compile(
    r"^Write (\d+) new, realistic[^\n]*?(?:label is|the label) \"(.+?)\"|^Write (\d+) new.*?entities of the type (.+?) \(and",
    re.S,
)


class PoolResponder:
    def __init__(self, pool_path, task: Task, labels: List[str], mischief: bool = True, sampled_flips: float = 0.0):
        self.task = task
        self.labels = labels
        self.pool = load_samples(pool_path, task, labels)
        self.by_text: Dict[str, Sample] = {s.text: s for s in self.pool}
        self.mischief = mischief
        self.calls = {"analysis": 0, "generate": 0, "label": 0, "write": 0}
        self.sampled_flips = sampled_flips
        self.flipped: Set[str] = set()
        self.rewrites = 0  # rewrite requests (grounded generation)

    def __call__(self, body: Dict) -> str:
        messages = body["messages"]
        last = messages[-1]["content"]
        rng = random.Random(hashlib.sha256(json.dumps(messages).encode()).hexdigest())
        if "Analyse the student's weaknesses" in last:
            self.calls["analysis"] += 1
            weak = rng.sample(self.labels, 2)
            return f"The student is weakest on {weak[0]} and often confuses it with {weak[1]}; it relies on keywords."
        ask = re.search(r"^Now write .*", last, re.M | re.S)  # after the student's brief, or alone after an analysis
        if ask:
            self.calls["generate"] += 1
            # the prompt asks for each text's (intended or final) annotation as {"text", ...} objects
            ask = ask.group(0)
            # the prompt names the task's answer keys ("label", "entities") when it wants them with the texts
            with_labels = any(f'"{key}"' in ask for key in self.task.answer_schema(self.labels))
            return self._generate(ask, rng, with_labels=with_labels)
        write = WRITE.search(last)
        if write:  # plain generation: texts of one label, with it
            self.calls["write"] += 1
            return self._write(int(write.group(1) or write.group(3)), write.group(2) or write.group(4), rng)
        if "Rewrite each text" in last:
            self.rewrites += 1
            return self._rewrite(last, rng)
        if "Answer with JSON only: one object per" in last:
            self.calls["label"] += 1
            sampled = (body.get("temperature") or 0) > 0
            return self._label(last, rng if sampled else None)
        return "I don't understand the request."

    def _generate(self, prompt: str, rng: random.Random, with_labels: bool) -> str:
        n_hard = int(re.match(r"Now write (\d+)", prompt).group(1))
        m = re.search(r"and (\d+) it will probably get RIGHT", prompt)
        n_easy = int(m.group(1)) if m else 0
        picks = rng.sample(self.pool, n_hard + n_easy)
        items = [self._item(s) if with_labels else s.text for s in picks]
        answer = {"hard": items[:n_hard]}
        if n_easy:
            answer["easy"] = items[n_hard:]
        text = json.dumps(answer, ensure_ascii=False)
        if self.mischief:
            return f"Here are the new samples, aimed at the weaknesses:\n```json\n{text}\n```\nHope this helps!"
        return text

    def _write(self, n: int, label: str, rng: random.Random) -> str:
        """``n`` pool texts of ``label``, each with its gold annotation; with mischief the last
        one is a text of another label (the writer strayed: a separate labelling call catches it)."""
        fits = [s for s in self.pool if label in self.task.sample_labels(s)]
        others = [s for s in self.pool if label not in self.task.sample_labels(s)]
        picks = rng.sample(fits, min(n, len(fits)))
        if self.mischief and others and picks:
            picks[-1] = rng.choice(others)
        return json.dumps({"hard": [self._item(s) for s in picks]}, ensure_ascii=False)

    def _rewrite(self, prompt: str, rng: random.Random) -> str:
        """Each anchor "rewritten" as a pool text of its target label; with mischief, anchor 2's
        is a text of another label (off target) and anchor 3 comes back unchanged."""
        out = []
        for m in re.finditer(r"^(\d+)\. target (.+?)(?:, confused with .+?)?: (\".*\")$", prompt, re.M):
            i, target, anchor = int(m.group(1)), m.group(2), json.loads(m.group(3))
            on_target = [s for s in self.pool if target in self.task.sample_labels(s)]
            off_target = [s for s in self.pool if target not in self.task.sample_labels(s)]
            if self.mischief and i == 3:
                text = anchor
            else:
                text = rng.choice(off_target if self.mischief and i == 2 else on_target or self.pool).text
            out.append({"id": i, "text": text})
        return json.dumps({"answers": out}, ensure_ascii=False)

    def _item(self, s: Sample) -> Dict:
        return {"text": s.text, **self.task.answer_of(s)}

    def _default(self, text: str) -> Sample:
        answer = self.task.answer_from_string(self.labels[0]) or {}
        return self.task.parse_answer(text, answer, self.labels, Counter()) or Sample(text)

    def _label(self, prompt: str, sampled: Optional[random.Random] = None) -> str:
        texts = [json.loads(m.group(1)) for m in re.finditer(r"^\d+\. (\".*\")$", prompt, re.M)]
        out = []
        for i, text in enumerate(texts, start=1):
            # a text not in the pool: the task's reading of a bare first label (ner: no entities)
            gold = self.by_text.get(text) or self._default(text)
            if sampled is not None and sampled.random() < self.sampled_flips:
                other = self.task.mislabel(gold, self.labels, sampled)
                if self.task.answer_key(other) != self.task.answer_key(gold):  # ner: a text without entities stays
                    self.flipped.add(text)
                gold = other
            answer = self.task.answer_of(gold)
            if self.mischief:
                answer = self._mischief(answer, i)
            out.append({"id": i, **answer})
        return json.dumps(out, ensure_ascii=False)

    def _mischief(self, answer: Dict, i: int) -> Dict:
        """A sloppy LLM's answer for text ``i``, by the shape of each answer value (no task is
        named): text 1's label (or the first of a list of labels, repeated) in upper case: repaired
        by label normalisation; text 3 an unknown label "other", or a mention that is not in its
        text (a list of {"text", "label"} objects): rejected."""
        schema = self.task.answer_schema(self.labels)
        for key, value in answer.items():
            if isinstance(value, str):
                answer[key] = value.upper().replace("_", " ") if i == 1 else "other" if i == 3 else value
            elif isinstance(value, list) and schema.get(key, {}).get("items", {}).get("type") == "object":
                if i == 3:
                    answer[key] = value + [{"text": "Zanzibar Quantum Holdings", "label": self.labels[0]}]
            elif isinstance(value, list):
                if i == 1 and value:
                    answer[key] = [value[0].upper()] + value
                if i == 3:
                    answer[key] = value + ["other"]
        return answer
