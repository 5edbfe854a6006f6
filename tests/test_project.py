"""The `spacy project run all` workflow on the shipped demo data (scaled down)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_project_all_workflow(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(ROOT / "project.yml", proj)
    shutil.copytree(ROOT / "configs", proj / "configs")
    shutil.copytree(ROOT / "assets" / "demo", proj / "assets" / "demo")
    cmd = [sys.executable, "-m", "spacy", "project", "run", "all", str(proj),
           "--vars.rounds", "1", "--vars.analyses_per_round", "1", "--vars.max_steps", "20"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=proj)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[evokd | simulated teacher] round 1/1: accepted" in proc.stdout
    for task, key in (("textcat", "macro_f"), ("ner", "ents_f")):
        metrics = json.loads((proj / "metrics" / f"{task}.json").read_text())
        n_test = len((ROOT / "assets/demo" / task / "test.jsonl").read_text().splitlines())
        assert 0.0 <= metrics[key] <= 1.0 and metrics["n"] == n_test
        assert (proj / "training" / task / "rounds" / "round_001.spacy").exists()
    wheels = sorted(p.name for p in (proj / "packages").rglob("*.whl"))
    assert any(w.startswith("en_evokd_textcat-0.1.0") for w in wheels)
    assert any(w.startswith("en_evokd_ner-0.1.0") for w in wheels)
    # a second run skips the unchanged steps and resumes the loop without redoing round 1
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=proj)
    assert again.returncode == 0 and "Skipping 'preprocess': nothing changed" in again.stdout
