"""The training regime: a round's steps follow its data (epochs), within a floor and a cap."""

from pathlib import Path

import spacy
from confection import Config

from spacy_evokd.data import write_docbin
from spacy_evokd.student import TrainData, batches_per_epoch, regime_steps, student_config, train_data


def _config(epochs: int, min_steps: int, cap: int, batcher=None) -> Config:
    batcher = batcher or {"@batchers": "spacy.batch_by_sequence.v1", "size": 16, "get_length": None}
    return Config(
        {
            "evokd": {"task": "textcat", "train_epochs": epochs, "min_train_steps": min_steps},
            "paths": {},
            "nlp": {"pipeline": ["textcat"]},
            "components": {"textcat": {"factory": "textcat"}},
            "training": {"max_steps": cap, "eval_frequency": 50, "max_epochs": 0, "batcher": batcher},
        }
    )


def test_steps_scale_with_the_docs_between_floor_and_cap():
    cfg = _config(epochs=20, min_steps=100, cap=3000)
    steps = {n: student_config(cfg, data=TrainData(n, n * 20))["training"]["max_steps"] for n in (5, 160, 800, 5000)}
    # 5 docs: one batch an epoch, 20 steps < the floor; 160 docs: 10 batches x 20; 800: 50 x 20; 5000: capped
    assert steps == {5: 100, 160: 200, 800: 1000, 5000: 3000}
    for n in (5, 160, 800, 5000):
        training = student_config(cfg, data=TrainData(n, n * 20))["training"]
        assert 1 <= training["eval_frequency"] <= training["max_steps"]
        assert training["max_epochs"] == 0  # the steps decide, not spaCy's epoch counter


def test_warm_start_steps_cap_a_warm_round_and_the_floor_never_exceeds_the_cap():
    cfg = _config(epochs=20, min_steps=100, cap=3000)
    warm = student_config(cfg, warm_start_from=Path("/prev/model-best"), max_steps=60, data=TrainData(800, 16000))
    assert warm["training"]["max_steps"] == 60
    assert warm["components"]["textcat"] == {"source": "/prev/model-best"}
    assert regime_steps(per_epoch=1, epochs=20, min_steps=100, cap=30) == 30


def test_without_epochs_the_config_steps_stay_as_written():
    cfg = _config(epochs=0, min_steps=100, cap=400)
    assert student_config(cfg, data=TrainData(5000, 100000))["training"]["max_steps"] == 400
    assert student_config(cfg, max_steps=20, data=TrainData(5000, 100000))["training"]["max_steps"] == 20


def test_batches_per_epoch_counts_docs_or_words_as_the_batcher_does():
    data = TrainData(docs=100, words=2000)
    assert batches_per_epoch({"@batchers": "spacy.batch_by_sequence.v1", "size": 16}, data) == 7
    assert batches_per_epoch({"@batchers": "spacy.batch_by_padded.v1", "size": 500}, data) == 4
    compounding = {"@schedules": "compounding.v1", "start": 100, "stop": 1000, "compound": 1.001}
    assert batches_per_epoch({"@batchers": "spacy.batch_by_words.v1", "size": compounding}, data) == 20


def test_train_data_counts_docs_and_words(tmp_path):
    nlp = spacy.blank("en")
    write_docbin([nlp("one two three"), nlp("four five")], tmp_path / "t.spacy")
    assert train_data(tmp_path / "t.spacy") == TrainData(2, 5)


def test_a_warmup_linear_rate_follows_the_round_steps():
    cfg = _config(epochs=4, min_steps=200, cap=1000)
    cfg["training"]["optimizer"] = {
        "@optimizers": "Adam.v1",
        "learn_rate": {
            "@schedules": "warmup_linear.v1",
            "warmup_steps": 250,
            "total_steps": 20000,
            "initial_rate": 5e-5,
        },
    }
    for docs, steps in ((5, 200), (1000, 252)):
        rate = student_config(cfg, data=TrainData(docs, docs * 20))["training"]["optimizer"]["learn_rate"]
        assert (rate["total_steps"], rate["warmup_steps"], rate["initial_rate"]) == (steps, steps // 10, 5e-5)


def test_training_progress_comes_as_numbers_and_the_saved_config_keeps_its_own_logger(tmp_path):
    """student.train reads each evaluation from the progress logger's JSON lines (not the console
    table, which still goes to train.log), and the saved student's config names the config's own
    logger again, so it trains with spaCy alone."""
    from spacy_evokd import student, training_progress
    from spacy_evokd.config import load_config

    from .conftest import ROOT, write_demo_corpus

    corpus = write_demo_corpus(tmp_path / "corpus", "textcat", k=2, splits=("dev",))
    cfg = load_config(
        ROOT / "configs/textcat_fast.cfg",
        {"training.max_steps": 12, "training.eval_frequency": 4, "evokd.train_epochs": 0},
    )
    lines = []
    best = student.train(cfg, corpus / "seed.spacy", corpus / "dev.spacy", tmp_path / "model", progress=lines.append)
    assert [l.split(",")[0] for l in lines] == [
        "training step 0",
        "training step 4",
        "training step 8",
        "training step 12",
    ]
    assert all(0.0 <= float(l.rsplit(" ", 1)[1]) <= 1.0 for l in lines)
    log = (tmp_path / "model/train.log").read_text()
    assert "E    #" in log and training_progress.PREFIX not in log  # spaCy's table, without our rows
    for saved in (best, tmp_path / "model/model-last"):
        logger = Config().from_disk(saved / "config.cfg", interpolate=False)["training"]["logger"]
        assert logger["@loggers"] == "spacy.ConsoleLogger.v1"
    assert training_progress.parse("  0       0          0.00      1.33    0.12    0.45") is None
    assert training_progress.parse(training_progress.PREFIX + "[1]") is None  # not a row: ignored
