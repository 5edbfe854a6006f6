"""README recipes run as written: the `spacy train` + augmenter section, both of its forms
(command-line augmenter; augmenter section in the config)."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import spacy

from spacy_evokd.data import write_docbin

from .test_augment import doc

ROOT = Path(__file__).parent.parent
SECTION = "## `spacy train` with the generated data"
FAST = ["--training.max_steps", "10", "--training.eval_frequency", "5"]  # the one addition: a short run


def section_blocks(lang: str):
    text = (ROOT / "README.md").read_text(encoding="utf8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return re.findall(rf"```{lang}\n(.*?)```", text[start:end], flags=re.S)


def commands(block: str):
    """The shell commands of a ```bash block (continuation lines joined, comments dropped)."""
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture
def project(tmp_path):
    """The README's relative paths: a seed without 'shipping' and one committed round holding
    only 'shipping', so the trained model knows 'shipping' only if the augmenter fed the round."""
    nlp = spacy.blank("en")
    seed = [doc(nlp, "I was charged twice", "billing"), doc(nlp, "reset my password please", "account")]
    write_docbin(seed, tmp_path / "corpus/textcat/seed.spacy")
    write_docbin(seed, tmp_path / "corpus/textcat/dev.spacy")
    rounds = tmp_path / "training/textcat/rounds"
    write_docbin(
        [doc(nlp, "where is my parcel", "shipping"), doc(nlp, "the courier lost it", "shipping")],
        rounds / "round_001.spacy",
    )
    (rounds / "round_001.json").write_text("{}")
    return tmp_path


def run(cmd, cwd):
    assert cmd[0] == "python"
    proc = subprocess.run([sys.executable] + cmd[1:], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}"


def trained_labels(project):
    return set(spacy.load(project / "training/final/model-last").get_pipe("textcat").labels)


def test_spacy_train_recipe_with_the_augmenter_on_the_command_line(project):
    (block,) = section_blocks("bash")
    init, train = commands(block)
    assert init[:4] == ["python", "-m", "spacy", "init"] and train[:4] == ["python", "-m", "spacy", "train"]
    assert "--corpora.train.augmenter" in train
    run(init, project)
    run(train + FAST, project)
    assert trained_labels(project) == {"account", "billing", "shipping"}


def test_spacy_train_recipe_with_the_augmenter_in_the_config(project):
    (block,) = section_blocks("bash")
    init, train = commands(block)
    (section,) = section_blocks("ini")
    run(init, project)
    cfg = project / "config.cfg"
    text = cfg.read_text()
    head, rest = text.split("[corpora.train]\n", 1)
    assert "augmenter = null\n" in rest  # what the README says a stock config has
    cfg.write_text(head + "[corpora.train]\n" + rest.replace("augmenter = null\n", "", 1) + "\n" + section)
    i = train.index("--corpora.train.augmenter")
    run(train[:i] + train[i + 2 :] + FAST, project)
    assert trained_labels(project) == {"account", "billing", "shipping"}
