"""The `spacy train` child ends with its parent: killing only the loop's pid (SIGKILL, no chance
to clean up) must not leave a trainer running on its own."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

PARENT = """
import sys, time
from spacy_evokd.student import spawn_trainer
child = spawn_trainer([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # exited, waiting to be reaped by whoever adopted it
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _ends_with_parent(parent: subprocess.Popen, child: int, seconds: float = 5.0) -> bool:
    """SIGKILL ``parent``; True when ``child`` is gone within ``seconds``."""
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + seconds
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(child)


def _clean_up(parent: subprocess.Popen, child) -> None:
    parent.kill()
    if child is not None and not _gone(child):
        os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_trainer_child_ends_when_its_parent_is_killed():
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT))
    )
    child = None
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
        assert _ends_with_parent(parent, child), f"trainer {child} outlived its killed parent"
    finally:
        _clean_up(parent, child)


TRAIN_PARENT = """
import sys
from pathlib import Path
from spacy_evokd import student
from spacy_evokd.config import load_config
cfg = load_config(Path(sys.argv[1]), {"training.max_steps": 0, "training.max_epochs": 0, "training.patience": 0,
                                             "training.eval_frequency": 1000000})
student.train(cfg, Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
"""


def _children(pid: int):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.slow  # a real `spacy train` start: a minute on a busy 2-core machine
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux procfs")
def test_killing_the_loop_process_ends_its_spacy_train(tmp_path):
    """student.train's `spacy train` subprocess, whose parent is SIGKILLed mid-training."""
    import spacy

    from spacy_evokd.data import jsonl_to_docs, write_docbin
    from spacy_evokd.tasks import get_task

    nlp = spacy.blank("en")
    write_docbin(
        jsonl_to_docs(ROOT / "assets/demo/textcat/dev.jsonl", get_task("textcat"), nlp), tmp_path / "dev.spacy"
    )
    args = [ROOT / "configs/textcat_bow.cfg", tmp_path / "dev.spacy", tmp_path / "dev.spacy", tmp_path / "out"]
    parent = subprocess.Popen(
        [sys.executable, "-c", TRAIN_PARENT, *map(str, args)],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    trainer = None
    try:
        deadline = time.monotonic() + 120
        while trainer is None and time.monotonic() < deadline and parent.poll() is None:
            for pid in _children(parent.pid):
                if b"spacy\0train" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    trainer = pid
            time.sleep(0.1)
        assert trainer is not None, "no `spacy train` child appeared"
        # killed once the trainer is into its steps, writing nothing until its next evaluation
        # (a write to the dead parent's pipe would end it anyway, by SIGPIPE)
        log = tmp_path / "out/train.log"
        while time.monotonic() < deadline and "LOSS" not in (log.read_text() if log.exists() else ""):
            time.sleep(0.1)
        time.sleep(1.0)
        assert _ends_with_parent(parent, trainer), f"spacy train {trainer} outlived its killed parent"
    finally:
        _clean_up(parent, trainer)


def test_training_after_minilm_embeddings_prints_no_tokenizer_fork_warning():
    # active picks embed pool texts with MiniLM (a fast tokenizer running threads) before every
    # round's `spacy train` is forked: the tokenizer's four-line warning must not reach the log
    code = (
        "import sys\n"
        "from spacy_evokd.pool_source import minilm_vectors\n"
        "from spacy_evokd.student import spawn_trainer\n"
        "v = minilm_vectors(['a short text', 'another one, longer than the first'] * 40, batch_size=80)\n"
        "assert v.shape == (80, 384)\n"
        "assert spawn_trainer(['true']).wait() == 0\n"
        # the child trains with the environment it would have had: no variable of ours in it
        "child = 'import os, sys; sys.exit(7 if \"TOKENIZERS_PARALLELISM\" in os.environ else 0)'\n"
        "assert spawn_trainer([sys.executable, '-c', child]).wait() == 0\n"
        "assert spawn_trainer([sys.executable, '-c', child], env={'PATH': '/usr/bin'}).wait() == 0\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "huggingface/tokenizers" not in proc.stderr
