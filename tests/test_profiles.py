"""The two student profiles (configs/<task>_fast.cfg, configs/<task>_accurate.cfg): what each file
holds, that each trains a student, and that the saved student loads with plain spaCy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

from spacy_evokd import student
from spacy_evokd.config import load_config
from spacy_evokd.data import jsonl_to_docs, write_docbin
from spacy_evokd.tasks import get_task

ROOT = Path(__file__).parent.parent
TASKS = ("textcat", "textcat_multilabel", "ner")
# profile -> the model each task's file holds (the file a profile name points to says it)
HOLDS = {
    "fast": {"textcat": "bow", "textcat_multilabel": "bow", "ner": "cnn"},
    "accurate": {"textcat": "minilm", "textcat_multilabel": "minilm", "ner": "minilm"},
}


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("profile", sorted(HOLDS))
def test_a_profile_is_the_config_named_by_its_model(task, profile):
    path = ROOT / f"configs/{task}_{profile}.cfg"
    assert path.resolve().name == f"{task}_{HOLDS[profile][task]}.cfg"
    cfg = load_config(path, {})
    pipeline = cfg["nlp"]["pipeline"]
    assert pipeline[-1] == task
    assert ("transformer" in pipeline) == (profile == "accurate")
    # a regime scaled to the data, with room above its floor
    assert cfg["evokd"]["train_epochs"] > 0 and 0 < cfg["evokd"]["min_train_steps"] < cfg["training"]["max_steps"]


def _seed(task: str, path: Path, n: int) -> Path:
    nlp = spacy.blank("en")
    docs = jsonl_to_docs(ROOT / f"assets/demo/{task}/train.jsonl", get_task(task), nlp)[:n]
    write_docbin(docs, path)
    return path


def _loads_with_spacy_alone(model: Path, text: str) -> str:
    """What the saved student predicts for ``text`` in a fresh interpreter where spacy_evokd can't
    be imported: the shipped student must need spaCy (and spacy-transformers) only."""
    code = (
        "import sys; sys.modules['spacy_evokd'] = None\n"
        "import spacy; doc = spacy.load(sys.argv[1])(sys.argv[2])\n"
        "print(sorted(doc.cats) if doc.cats else [e.label_ for e in doc.ents])"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", code, str(model), text], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_the_fast_textcat_student_trains_by_its_regime_and_loads_with_spacy_alone(tmp_path):
    cfg = load_config(ROOT / "configs/textcat_fast.cfg", {"training.max_steps": 12})
    seed = _seed("textcat", tmp_path / "seed.spacy", 10)
    model = student.train(cfg, seed, seed, tmp_path / "model")
    from confection import Config

    trained = Config().from_disk(model / "config.cfg", interpolate=False)
    assert "evokd" not in trained and trained["training"]["max_steps"] == 12  # the cap wins over the floor (100)
    labels = load_config(ROOT / "configs/textcat_fast.cfg", {})["evokd"]["labels"]
    assert _loads_with_spacy_alone(model, "My parcel never arrived") == str(sorted(labels))


@pytest.mark.slow  # MiniLM on CPU: about a minute a task on 2 cores
@pytest.mark.parametrize("task", TASKS)
def test_the_accurate_student_trains_and_loads_with_spacy_and_spacy_transformers(task, tmp_path):
    cfg = load_config(ROOT / f"configs/{task}_accurate.cfg", {"training.max_steps": 4})
    seed = _seed(task, tmp_path / "seed.spacy", 6)
    model = student.train(cfg, seed, seed, tmp_path / "model")
    out = _loads_with_spacy_alone(model, "Sarah Jones in Berlin can't log in to her Acme account")
    if task != "ner":
        assert out == str(sorted(cfg["evokd"]["labels"]))
    else:
        assert out.startswith("[")


@pytest.mark.slow
def test_a_frozen_encoder_is_sourced_so_spacy_trains_its_head_alone(tmp_path):
    """spaCy skips frozen components when it initialises: student.train sources a frozen
    transformer from an initialised copy, and the trained head's encoder is that copy, unchanged."""
    overrides = {
        "training.max_steps": 4,
        "training.frozen_components": ["transformer"],
        "training.annotating_components": ["transformer"],
    }
    cfg = load_config(ROOT / "configs/textcat_accurate.cfg", overrides)
    seed = _seed("textcat", tmp_path / "seed.spacy", 6)
    model = student.train(cfg, seed, seed, tmp_path / "model")
    assert not (tmp_path / "model" / "frozen").exists()  # the scratch copy is gone
    nlp = spacy.load(model)
    fresh = spacy.blank("en")
    resolved = cfg.interpolate()["components"]["transformer"]
    fresh.add_pipe("transformer", config={k: v for k, v in resolved.items() if k != "factory"}).initialize()
    params = lambda n: n.get_pipe("transformer").model.get_ref("transformer")  # noqa: E731
    assert (
        params(nlp)
        .shims[0]
        ._model.state_dict()["embeddings.word_embeddings.weight"]
        .equal(params(fresh).shims[0]._model.state_dict()["embeddings.word_embeddings.weight"])
    )
    assert sorted(nlp("a question about my invoice").cats) == sorted(cfg["evokd"]["labels"])
