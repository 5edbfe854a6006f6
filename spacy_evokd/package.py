"""`python -m spacy_evokd package RUN_DIR OUTPUT_DIR --name NAME`: an installable pipeline package
of a run's student that says what it scores.

`spacy package` ships the student's folder as it is; this stages a copy first, so the run's
model-best is never changed:
- config.cfg: every [paths] value becomes null (the training machine's seed, dev, test and pool
  files mean nothing where the package is installed), except one the pipeline itself refers to
  that is no file here (a Hugging Face model name such as the transformer's);
- meta.json: ``evokd.dev`` and ``evokd.test`` hold the task's main scores with the number of
  documents they were measured on (test: the run config's ``paths.test``, or ``--test``), and the
  description says both, so a 50-document dev score is not read as the package's accuracy.
Then `spacy package` writes OUTPUT_DIR/<lang>_<name>-<version>/ and, with ``build="wheel"``,
`python -m build` its wheel in dist/ (quietly: spaCy would echo the whole setuptools build).
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional

from .data import DataError
from .run_files import read_json, write_json, write_text


def _null_paths(cfg_path: Path) -> None:
    from confection import Config

    cfg = Config().from_disk(cfg_path, interpolate=False)
    used = cfg.get("nlp", {}).__str__() + cfg.get("components", {}).__str__()
    for key, value in cfg.get("paths", {}).items():
        referenced = "${paths.%s}" % key in used
        if value is not None and not (referenced and isinstance(value, str) and not Path(value).exists()):
            if referenced:  # a local file the pipeline needs to load: it would not exist where installed
                raise DataError(
                    f"{cfg_path}: [paths] {key} = {value!r} is a file of this machine that the pipeline "
                    "loads from; package a student whose config names it portably (e.g. a Hugging Face name)"
                )
            cfg["paths"][key] = None
    write_text(cfg_path, cfg.to_str())


def _scores(model: Path, gold: Path) -> Dict[str, Any]:
    from .data import read_docbin
    from .student import evaluate, load, task_of

    nlp = load(model)
    task = task_of(nlp)
    labels = list(nlp.get_pipe(task.student_pipe(nlp)).labels)
    scores, _ = evaluate(nlp, read_docbin(gold, nlp.vocab), task, labels)
    return {**{k: round(scores[k], 4) for k in task.main_score_keys}, "n": scores["n"], "file": gold.name}


def _stamp(meta_path: Path, model: Path, run_dir: Path, test: Optional[Path]) -> Dict[str, Any]:
    from .run_dir import RunDir
    from .student import load, task_of

    meta = read_json(meta_path)
    evokd = dict(meta.get("evokd") or {})
    task = task_of(load(model))
    retrained = (model.parent / "retrained.json").exists()
    if retrained:
        info = read_json(model.parent / "retrained.json")
        evokd.update(retrained_on_reviewed_data=True, train_size=info.get("train_size"))
        dev = info.get("dev", {})
    else:
        best = RunDir(run_dir).load_record(int(evokd.get("best_round", 0)))
        dev = best.dev
    evokd["dev"] = {**{k: round(dev[k], 4) for k in task.main_score_keys if k in dev}, "n": dev.get("n")}
    if test is not None:
        evokd["test"] = _scores(model, test)
    meta["evokd"] = evokd
    metric = task.main_score_keys[0]
    said = [f"dev {metric} {evokd['dev'].get(metric, float('nan')):.3f} ({evokd['dev'].get('n')} docs)"]
    if "test" in evokd:
        said.append(f"test {metric} {evokd['test'][metric]:.3f} ({evokd['test']['n']} docs)")
    else:
        said.append("no test score (no test set given)")
    base = (meta.get("description") or "Student distilled with spacy-evokd.").split(" Scores:")[0]
    meta["description"] = (
        base + (" Retrained on the reviewed data." if retrained else "") + " Scores: " + ", ".join(said) + "."
    )
    write_json(meta_path, meta)
    return evokd


def run_test_path(run_dir: Path) -> Optional[Path]:
    """The run config's paths.test, when it names a file that exists."""
    from confection import Config

    from .run_dir import RunDir

    try:
        test = Config().from_disk(RunDir(run_dir).config_path)["paths"].get("test")
    except (OSError, KeyError, ValueError):
        return None
    return Path(test) if test and Path(test).exists() else None


def package_student(
    run_dir: Path,
    output_dir: Path,
    name: str,
    version: str = "0.1.0",
    model: Optional[Path] = None,
    test: Optional[Path] = None,
    build: str = "wheel",
) -> Dict[str, Any]:
    """Stage, stamp and package RUN_DIR's model-best (or ``model``); returns {"dir", "wheel", "evokd"}."""
    from spacy.cli.package import package

    from .run_dir import RunDir

    run_dir = Path(run_dir)
    model = Path(model) if model else RunDir(run_dir).model_best
    if not (model / "meta.json").exists():
        raise DataError(f"{model}: no trained student (no meta.json): run `evolve` first")
    if build not in ("wheel", "none"):
        raise DataError(f"--build {build!r}: expected wheel or none")
    test = Path(test) if test else run_test_path(run_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="evokd-package-") as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(model, staged, ignore=shutil.ignore_patterns("evokd_round.txt", "*.tmp"))
        if (model.parent / "retrained.json").exists():
            shutil.copy(model.parent / "retrained.json", staged.parent / "retrained.json")
        _null_paths(staged / "config.cfg")
        evokd = _stamp(staged / "meta.json", staged, run_dir, test)
        # require_parent: spaCy itself in the requirements, as `spacy package` on the command line does
        package(
            staged,
            output_dir,
            name=name,
            version=version,
            create_sdist=False,
            create_wheel=False,
            force=True,
            require_parent=True,
            silent=True,
        )
    lang = read_json(model / "meta.json").get("lang", "en")
    pkg = output_dir / f"{lang}_{name}-{version}"
    wheel = None
    if build == "wheel":
        proc = subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--quiet", str(pkg)], capture_output=True, text=True
        )
        if proc.returncode != 0:
            tail = "; ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            raise DataError(f"{pkg}: building the wheel failed ({tail})")
        wheel = next(iter(sorted((pkg / "dist").glob("*.whl"))), None)
    return {"dir": pkg, "wheel": wheel, "evokd": evokd}
