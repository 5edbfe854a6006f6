"""The `spacy project run all` workflow on the shipped demo data (scaled down)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow  # 200 s: three tasks trained, reported and packaged (bin/test -m slow)
def test_project_all_workflow(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "project.yml", proj)
    shutil.copytree(ROOT / "configs", proj / "configs")
    shutil.copytree(ROOT / "assets" / "demo", proj / "assets" / "demo")
    cmd = [
        sys.executable,
        "-m",
        "spacy",
        "project",
        "run",
        "all",
        str(proj),
        "--vars.rounds",
        "1",
        "--vars.analyses_per_round",
        "1",
        "--vars.max_steps",
        "20",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=proj)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[evokd | simulated teacher] round 1/1: accepted" in proc.stdout
    for task, key in (("textcat", "macro_f"), ("ner", "ents_f")):
        metrics = json.loads((proj / "metrics" / f"{task}.json").read_text())
        n_test = len((ROOT / "assets/demo" / task / "test.jsonl").read_text().splitlines())
        assert 0.0 <= metrics[key] <= 1.0 and metrics["n"] == n_test
        assert (proj / "training" / task / "rounds" / "round_001.spacy").exists()
        report = (proj / "training" / task / "report" / "report.md").read_text()
        assert "Simulated teacher" in report and "| 1 |" in report
        assert all(
            (proj / "training" / task / "report" / f"{p}.png").stat().st_size > 1000
            for p in ("dev_score", "per_label_f1", "samples_per_label")
        )
        # a rejections plot only when something was rejected (the simulated teacher's answers all pass)
        rejected = int(re.search(r"^- accepted samples: \d+, rejected: (\d+)$", report, flags=re.M).group(1))
        assert (proj / "training" / task / "report" / "rejections.png").exists() == (rejected > 0)
        # the simulated teacher spends no tokens: that plot is left out, and the report says why
        assert "no tokens and cost plot" in report and (proj / "training" / task / "report" / "report.html").exists()
    wheels = sorted(p.name for p in (proj / "packages").rglob("*.whl"))
    assert any(w.startswith("en_evokd_textcat-0.1.0") for w in wheels)
    assert any(w.startswith("en_evokd_ner-0.1.0") for w in wheels)
    assert any(w.startswith("en_evokd_textcat_multilabel-0.1.0") for w in wheels)  # every student the demo trains
    # the package installs and loads without spacy-evokd (blocked from importing) and requires
    # neither spacy-evokd nor spacy-llm (spacy-llm, installed here, registers its own factories)
    target = tmp_path / "site"
    wheel = next((proj / "packages").rglob("en_evokd_textcat-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)], check=True
    )
    probe = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, *a):\n"
        "        if name.split('.')[0] == 'spacy_evokd': raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(target)!r})\n"
        "import spacy, json\n"
        "nlp = spacy.load('en_evokd_textcat')\n"
        "doc = nlp('I was charged twice for my order')\n"
        "print(json.dumps({'cats': doc.cats, 'evokd': nlp.meta['evokd']}))\n"
    )
    requires = [
        l
        for p in target.glob("en_evokd_textcat-*.dist-info/METADATA")
        for l in p.read_text().splitlines()
        if l.startswith("Requires-Dist")
    ]
    assert any("spacy" in r for r in requires) and not any("evokd" in r or "llm" in r for r in requires)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout)
    assert sum(loaded["cats"].values()) == pytest.approx(1.0)
    record = json.loads(
        (proj / "training/textcat/rounds" / f"round_{loaded['evokd']['best_round']:03d}.json").read_text()
    )
    assert loaded["evokd"]["simulated"] is True and loaded["evokd"]["rounds"] == 1
    # (spaCy writes the packaged meta's floats with 10 decimals)
    assert loaded["evokd"]["dev"]["macro_f"] == pytest.approx(record["dev"]["macro_f"], abs=1e-4)
    n_test = len((ROOT / "assets/demo/textcat/test.jsonl").read_text().splitlines())
    assert loaded["evokd"]["dev"]["n"] == record["dev"]["n"] and loaded["evokd"]["test"]["n"] == n_test
    # a second run skips the unchanged steps and resumes the loop without redoing round 1
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=proj)
    assert again.returncode == 0 and "Skipping 'preprocess': nothing changed" in again.stdout
