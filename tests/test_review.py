"""Export a real run's samples for review and take the review back (review.py, issue 12).

One textcat and one NER run (1 round each, simulated teacher, real `spacy train`) are shared by
the module; every test that imports works on its own copy of the run directory.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_evokd.augment import EvolvingAugmenter
from spacy_evokd.cli import app
from spacy_evokd.data import DataError, read_docbin
from spacy_evokd.loop import evolve
from spacy_evokd.review import export_run, import_review, removed_texts
from spacy_evokd.run_files import RunDirError, hold_run_dir

from .conftest import write_demo_corpus

# its module-scoped fixtures run once: the parallel run (-n 2 --dist loadgroup) keeps the file on one worker
pytestmark = pytest.mark.xdist_group("test_review")

ROOT = Path(__file__).parent.parent
ID = re.compile(r"r001-\d{4}-[0-9a-f]{12}")


def _overrides(corpus: Path, task: str, rounds: int = 1):
    return {
        "evokd.analysis": "llm",  # the EvoKD loop's analysis path (the default is plain generation)
        "evokd.rounds": rounds,
        "evokd.analyses_per_round": 2,
        "evokd.warm_start_steps": 4,
        "training.max_steps": 10,
        "training.eval_frequency": 5,
        "paths.train": str(corpus / "seed.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "paths.test": str(corpus / "test.spacy"),
        "paths.pool": str(ROOT / f"assets/demo/{task}/train.jsonl"),
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """task -> (run dir, corpus dir): a committed round 1 per task. The NER run goes through the
    CLI in a second process while the textcat run trains here: the two runs' `spacy train`
    subprocesses overlap, which keeps this file within its time budget."""
    base = {task: tmp_path_factory.mktemp(task) for task in ("textcat", "ner")}
    corpus = {task: write_demo_corpus(base[task] / "corpus", task) for task in base}
    ner_args = [f"--{k}={v}" for k, v in _overrides(corpus["ner"], "ner").items()]
    ner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spacy_evokd",
            "evolve",
            str(ROOT / "configs/ner_cnn.cfg"),
            str(base["ner"] / "run"),
            *ner_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        evolve(
            ROOT / "configs/textcat_bow.cfg",
            base["textcat"] / "run",
            _overrides(corpus["textcat"], "textcat"),
            echo=lambda _: None,
        )
    finally:
        output, _ = ner.communicate(timeout=600)
    assert ner.returncode == 0, output
    return {task: (base[task] / "run", corpus[task]) for task in base}


def copy_run(src: Path, dst: Path) -> Path:
    """The files import reads and writes (models are not needed: they stay as trained)."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("models", "model-best", "cache.sqlite"))
    return dst


def read_lines(path: Path):
    return [json.loads(l) for l in path.read_text(encoding="utf8").splitlines()]


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf8")
    return path


def docs_of(run: Path):
    return read_docbin(run / "rounds/round_001.spacy", spacy.blank("en").vocab)


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


# -- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["textcat", "ner"])
def test_export_lines_match_the_docbins(runs, tmp_path, task):
    run, _ = runs[task]
    result = cli("export", run, tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    lines, docs = read_lines(tmp_path / "out.jsonl"), docs_of(run)
    record = json.loads((run / "rounds/round_001.json").read_text())
    assert f"✔ {len(docs)} samples from 1 rounds" in result.output
    assert len(lines) == len(docs) == record["accepted"] > 0
    judged = {j["pred"]["text"]: j["pred"] for j in record["feedback"]["correct"] + record["feedback"]["wrong"]}
    for i, (line, doc) in enumerate(zip(lines, docs)):
        meta = line["meta"]
        assert line["text"] == doc.text and line["answer"] == "accept"
        assert ID.fullmatch(meta["evokd_id"]) and meta["evokd_id"].startswith(f"r001-{i:04d}-")
        assert meta["round"] == 1 and meta["intent"] == doc.user_data["evokd"]["intent"] in ("hard", "easy")
        assert meta["teacher"] == record["teacher"] and meta["simulated"] is True
        assert isinstance(line["_input_hash"], int) and isinstance(line["_task_hash"], int)
        if task == "textcat":
            gold = max(doc.cats, key=doc.cats.get)
            assert line["label"] == gold and line["accept"] == [gold]
            assert [o["id"] for o in line["options"]] == list(doc.cats)  # every label offered in the choice view
            assert meta["student_prediction"] == judged[doc.text]["label"]
        else:
            assert [(s["start"], s["end"], s["label"]) for s in line["spans"]] == [
                (e.start_char, e.end_char, e.label_) for e in doc.ents
            ]
            assert [(s["token_start"], s["token_end"]) for s in line["spans"]] == [
                (e.start, e.end - 1) for e in doc.ents
            ]
            assert [t["text"] for t in line["tokens"]] == [line["text"][t["start"] : t["end"]] for t in line["tokens"]]
            assert "student_prediction" in meta
    # the same sample exports with the same ids and hashes (Prodigy dedupes on them)
    export_run(run, tmp_path / "again.jsonl")
    assert read_lines(tmp_path / "again.jsonl") == lines


def test_rejected_samples_are_exported_as_kept_and_never_invented(runs, tmp_path):
    """--rejected adds what the round records keep of rejected samples (records.rejected_samples,
    as the loop writes them: tests/test_loop.py checks that side), counts the rest, and import
    skips those rows."""
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    path = run / "rounds/round_001.json"
    rec = json.loads(path.read_text())
    rec["rejected"] = {"label_leak": 1, "near_duplicate": 1, "malformed_answer": 1}  # the parser's: no text
    rec["rejected_samples"] = [
        {
            "text": "Billing: I was charged twice",
            "reason": "label_leak",
            "intent": "hard",
            "annotation": {"label": "billing"},
        },
        {
            "text": "Where is my parcel??",
            "reason": "near_duplicate",
            "intent": "easy",
            "annotation": {"label": "shipping"},
        },
    ]
    path.write_text(json.dumps(rec))
    result = cli("export", run, tmp_path / "out.jsonl", "--rejected")
    assert result.exit_code == 0 and "+ 2 rejected (1 more only counted)" in result.output, result.output
    rows = read_lines(tmp_path / "out.jsonl")
    rejected = [r for r in rows if r["meta"].get("rejection_reason")]
    assert len(rows) - len(rejected) == sum(
        json.loads(p.read_text())["accepted"] for p in (run / "rounds").glob("round_00[1-9].json")
    )
    assert [
        (r["text"], r["answer"], r["meta"]["rejection_reason"], r["meta"]["teacher_annotation"]) for r in rejected
    ] == [
        ("Billing: I was charged twice", "reject", "label_leak", {"label": "billing"}),
        ("Where is my parcel??", "reject", "near_duplicate", {"label": "shipping"}),
    ]
    assert all(r["meta"]["evokd_id"].startswith("r001-rej-") for r in rejected)
    docs = (run / "rounds/round_001.spacy").read_bytes()
    import_review(run, tmp_path / "out.jsonl")  # the rejected rows are for reading: nothing changes
    assert (run / "rounds/round_001.spacy").read_bytes() == docs and removed_texts(run) == set()


# -- import: the round trip -----------------------------------------------------------------


def test_textcat_review_round_trip(runs, tmp_path):
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    original = (run / "rounds/round_001.spacy").read_bytes()
    record = (run / "rounds/round_001.json").read_bytes()
    export_run(run, tmp_path / "out.jsonl")
    rows = read_lines(tmp_path / "out.jsonl")
    assert len(rows) >= 4
    labels = [o["id"] for o in rows[0]["options"]]
    other = lambda label: next(l for l in labels if l != label)  # noqa: E731
    new0, new2 = other(rows[0]["label"]), other(rows[2]["label"])
    rows[0]["accept"] = [new0]  # as Prodigy's choice view writes it: "label" left as exported
    rows[1]["answer"] = "reject"
    rows[2]["label"] = new2  # as a text editor user writes it: "accept" left as exported
    rows[3]["answer"] = "ignore"
    rows[3]["accept"] = [other(rows[3]["label"])]  # ignored: not applied
    reviewed = write_lines(tmp_path / "reviewed.jsonl", rows)

    result = cli("import-review", run, reviewed)
    assert result.exit_code == 0, result.output
    assert f"✔ review imported: 2 corrected, 1 removed, {len(rows) - 3} kept" in result.output

    docs = {d.text: d for d in docs_of(run)}
    assert rows[1]["text"] not in docs and len(docs) == len(rows) - 1
    assert docs[rows[0]["text"]].cats[new0] == 1.0 and sum(docs[rows[0]["text"]].cats.values()) == 1.0
    assert docs[rows[2]["text"]].cats[new2] == 1.0
    assert docs[rows[3]["text"]].cats[rows[3]["label"]] == 1.0
    assert removed_texts(run) == {rows[1]["text"]}
    assert (run / "review/original/round_001.spacy").read_bytes() == original
    assert (run / "rounds/round_001.json").read_bytes() == record  # history is not rewritten
    log = read_lines(run / "review/log.jsonl")
    assert log[0]["rounds"]["1"] == {"corrected": 2, "removed": 1, "kept": len(rows) - 3, "already_removed": 0}

    # `spacy train`'s augmenter replays the corrected round
    aug = EvolvingAugmenter(str(run / "rounds"))
    replayed = {d.text: max(d.cats, key=d.cats.get) for d, _ in aug.weighted_docs(spacy.blank("en"))}
    assert replayed[rows[0]["text"]] == new0 and rows[1]["text"] not in replayed

    # a re-export keeps the ids and shows the teacher's label; a second import changes nothing
    export_run(run, tmp_path / "again.jsonl")
    again = {r["meta"]["evokd_id"]: r for r in read_lines(tmp_path / "again.jsonl")}
    assert set(again) == {r["meta"]["evokd_id"] for r in rows} - {rows[1]["meta"]["evokd_id"]}
    assert again[rows[0]["meta"]["evokd_id"]]["meta"]["teacher_annotation"] == rows[0]["label"]
    rewritten = (run / "rounds/round_001.spacy").read_bytes()
    result = cli("import-review", run, reviewed)
    assert result.exit_code == 0 and "0 corrected, 0 removed" in result.output and "1 removed earlier" in result.output
    assert (run / "rounds/round_001.spacy").read_bytes() == rewritten
    assert removed_texts(run) == {rows[1]["text"]} and len((run / "review/removed.jsonl").read_text().splitlines()) == 1


def test_ner_review_round_trip(runs, tmp_path):
    run = copy_run(runs["ner"][0], tmp_path / "run")
    export_run(run, tmp_path / "out.jsonl")
    rows = read_lines(tmp_path / "out.jsonl")
    edit = next(r for r in rows if r["spans"])
    drop = next(r for r in rows if r is not edit)
    span, tokens = edit["spans"][0], edit["tokens"]
    # the first entity becomes one token shorter (or longer) and gets another label
    end_tok = span["token_end"] - 1 if span["token_end"] > span["token_start"] else span["token_end"] + 1
    new_label = "ORG" if span["label"] != "ORG" else "PER"
    edit["spans"][0] = {
        "start": span["start"],
        "end": tokens[end_tok]["end"],
        "token_start": span["token_start"],
        "token_end": end_tok,
        "label": new_label,
    }
    if end_tok > span["token_end"] and len(edit["spans"]) > 1 and edit["spans"][1]["token_start"] <= end_tok:
        del edit["spans"][1]  # a longer span must not overlap the next entity
    drop["answer"] = "reject"
    import_review(run, write_lines(tmp_path / "reviewed.jsonl", rows))

    docs = {d.text: d for d in docs_of(run)}
    assert drop["text"] not in docs and removed_texts(run) == {drop["text"]}
    ents = [(e.start_char, e.end_char, e.label_) for e in docs[edit["text"]].ents]
    assert ents == [(s["start"], s["end"], s["label"]) for s in edit["spans"]]
    assert docs[edit["text"]].user_data["evokd"]["review"] == "corrected"
    assert read_lines(run / "review/log.jsonl")[0]["totals"]["corrected"] == 1


# -- import: refused input --------------------------------------------------------------------


def _bad_textcat(rows):
    others = [o["id"] for o in rows[1]["options"] if o["id"] != rows[1]["label"]]
    return {
        "not JSON": ("{'text': 'single quotes'}", "invalid JSON"),
        "unknown label": (
            dict(rows[1], accept=["refund_request"]),
            "label 'refund_request' is not in the run's labels",
        ),
        "unknown id": (
            dict(rows[1], meta=dict(rows[1]["meta"], evokd_id="r007-0001-0123456789ab")),
            "unknown sample r007-0001",
        ),
        "edited text": (dict(rows[1], text=rows[1]["text"] + " Thanks!"), "text edits are not imported"),
        "two labels": (dict(rows[1], accept=rows[1]["accept"] + [rows[0]["label"]]), "single-label"),
        "label and accept disagree": (dict(rows[1], label=others[0], accept=[others[1]]), "disagree"),
        "unknown answer": (dict(rows[1], answer="maybe"), "answer 'maybe' is not one of accept, reject, ignore"),
        "same sample twice": (dict(rows[0], answer="accept"), "is already reviewed on line 1"),
    }


def _bad_ner(rows):
    row = next(r for r in rows[1:] if r["spans"])
    n = len(row["text"])
    s = row["spans"][0]
    return {
        "span outside the text": (
            dict(row, spans=[{"start": n - 2, "end": n + 5, "label": s["label"]}]),
            "outside the text",
        ),
        "span inside a token": (dict(row, spans=[dict(s, end=s["end"] - 1)]), "token boundaries"),
        "unknown span label": (dict(row, spans=[dict(s, label="GPE")]), "label 'GPE' is not in the run's labels"),
        "overlapping spans": (dict(row, spans=[s, dict(s)]), "overlaps span 0"),
    }


BAD_LINES = [
    ("textcat", c)
    for c in (
        "not JSON",
        "unknown label",
        "unknown id",
        "edited text",
        "two labels",
        "label and accept disagree",
        "unknown answer",
        "same sample twice",
    )
]
BAD_LINES += [
    ("ner", c) for c in ("span outside the text", "span inside a token", "unknown span label", "overlapping spans")
]


@pytest.mark.parametrize("task,case", BAD_LINES)
def test_bad_review_line_is_one_error_and_nothing_is_written(runs, tmp_path, task, case):
    run = copy_run(runs[task][0], tmp_path / "run")
    before = (run / "rounds/round_001.spacy").read_bytes()
    export_run(run, tmp_path / "out.jsonl")
    rows = read_lines(tmp_path / "out.jsonl")
    bad, message = (_bad_textcat if task == "textcat" else _bad_ner)(rows)[case]
    good = dict(rows[0], answer="reject")  # a valid line first: it must not be applied either
    path = tmp_path / "reviewed.jsonl"
    path.write_text(
        json.dumps(good) + "\n" + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n", encoding="utf8"
    )
    with pytest.raises(DataError, match=re.escape(f"{path}:2: ")) as e:
        import_review(run, path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert (run / "rounds/round_001.spacy").read_bytes() == before
    assert not (run / "review").exists() and removed_texts(run) == set()


def test_cli_prints_one_line_for_a_bad_review(runs, tmp_path):
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    path = tmp_path / "reviewed.jsonl"
    path.write_text('{"text": "x", "answer": "accept"}\n', encoding="utf8")
    result = cli("import-review", run, path)
    assert result.exit_code == 1
    expected = f"✘ {path}:1: no meta.evokd_id: only lines of a `spacy_evokd export` file can be imported"
    assert result.output.strip().splitlines() == [expected]


def test_import_is_refused_while_a_loop_holds_the_run_dir(runs, tmp_path):
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    export_run(run, tmp_path / "out.jsonl")
    rows = read_lines(tmp_path / "out.jsonl")
    reviewed = write_lines(tmp_path / "reviewed.jsonl", [dict(rows[0], answer="reject")])
    before = (run / "rounds/round_001.spacy").read_bytes()
    with hold_run_dir(run):  # what EvoKDLoop.run holds for the whole run
        with pytest.raises(RunDirError, match="a running loop holds the run directory") as e:
            import_review(run, reviewed)
    assert "\n" not in str(e.value)
    assert (run / "rounds/round_001.spacy").read_bytes() == before and not (run / "review").exists()
    import_review(run, reviewed)  # once the loop is gone it goes through
    assert removed_texts(run) == {rows[0]["text"]}


def test_unknown_task_in_the_run_config_is_one_line(runs, tmp_path):
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    cfg = run / "config.cfg"
    cfg.write_text(re.sub(r'(?m)^task = "textcat"$', 'task = "pos"', cfg.read_text()))
    with pytest.raises(
        RunDirError, match=re.escape(f"{cfg}: unknown task 'pos': expected one of textcat, ner, textcat_multilabel")
    ) as e:
        export_run(run, tmp_path / "out.jsonl")
    assert "\n" not in str(e.value) and not (tmp_path / "out.jsonl").exists()


class _WithoutReviewFiles:
    """textcat without ty.Reviewable's members: a task that runs the loop but writes no review files."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        if name in ("review_task", "review_annotation", "reviewed_sample"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def test_a_task_without_review_files_is_refused_in_one_line(runs, tmp_path):
    from spacy_evokd.tasks import get_task, register_task, unregister_task
    from spacy_evokd.ty import Reviewable, Task

    task = _WithoutReviewFiles(get_task("textcat"))
    assert isinstance(task, Task) and not isinstance(task, Reviewable)
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    cfg = run / "config.cfg"
    cfg.write_text(re.sub(r'(?m)^task = "textcat"$', 'task = "plain_textcat"', cfg.read_text()))
    register_task("plain_textcat", task)
    try:
        for call in (
            lambda: export_run(run, tmp_path / "out.jsonl"),
            lambda: import_review(run, tmp_path / "in.jsonl"),
        ):
            with pytest.raises(RunDirError, match=re.escape(f"{cfg}: task 'textcat' has no review files")) as e:
                call()
            assert "\n" not in str(e.value)
    finally:
        unregister_task("plain_textcat")
    assert not (tmp_path / "out.jsonl").exists()


# -- textcat_multilabel: the same export / import, through its Task's review members ----------

ML_LABELS = ["account", "billing", "product_question", "shipping", "technical"]


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    """A committed round 1 of a textcat_multilabel run (its own fixture: only these tests wait for it)."""
    base = tmp_path_factory.mktemp("textcat_multilabel")
    corpus = write_demo_corpus(base / "corpus", "textcat_multilabel")
    evolve(
        ROOT / "configs/textcat_multilabel_bow.cfg",
        base / "run",
        _overrides(corpus, "textcat_multilabel"),
        echo=lambda _: None,
    )
    return base / "run"


def test_multilabel_review_round_trip(ml_run, tmp_path):
    run = copy_run(ml_run, tmp_path / "run")
    result = cli("export", run, tmp_path / "out.jsonl")
    assert result.exit_code == 0, result.output
    rows, docs = read_lines(tmp_path / "out.jsonl"), docs_of(run)
    record = json.loads((run / "rounds/round_001.json").read_text())
    assert len(rows) == len(docs) == record["accepted"] >= 4
    judged = {
        j["pred"]["text"]: j["pred"]["labels"] for j in record["feedback"]["correct"] + record["feedback"]["wrong"]
    }
    for row, doc in zip(rows, docs):
        gold = sorted(l for l, v in doc.cats.items() if v == 1.0)
        # Prodigy's multiple choice: every label an option, the sample's set accepted
        assert row["labels"] == row["accept"] == row["meta"]["exported_labels"] == gold and gold
        assert [o["id"] for o in row["options"]] == ML_LABELS
        assert row["meta"]["student_prediction"] == (", ".join(judged[doc.text]) or "(none)")
        assert ID.fullmatch(row["meta"]["evokd_id"]) and isinstance(row["_task_hash"], int)

    def other(have):  # a label the sample doesn't have
        return next(l for l in ML_LABELS if l not in have)

    added = rows[0]["labels"] + [other(rows[0]["labels"])]
    rows[0]["accept"] = list(reversed(added))  # Prodigy ticks one more box ("labels" left as exported)
    rows[1]["answer"] = "reject"
    rows[2]["labels"] = [other(rows[2]["labels"])]  # a text editor user replaces the set ("accept" as exported)
    rows[3]["accept"] = list(reversed(rows[3]["accept"])) * 2  # the same set, in another order: not a correction
    reviewed = write_lines(tmp_path / "reviewed.jsonl", rows)
    result = cli("import-review", run, reviewed)
    assert result.exit_code == 0, result.output
    assert f"✔ review imported: 2 corrected, 1 removed, {len(rows) - 3} kept" in result.output

    after = {d.text: d for d in docs_of(run)}
    assert rows[1]["text"] not in after and removed_texts(run) == {rows[1]["text"]}
    labels_of = lambda d: sorted(l for l, v in d.cats.items() if v == 1.0)  # noqa: E731
    assert labels_of(after[rows[0]["text"]]) == sorted(added)
    assert labels_of(after[rows[2]["text"]]) == rows[2]["labels"]
    assert labels_of(after[rows[3]["text"]]) == rows[3]["meta"]["exported_labels"]
    assert all(set(d.cats) == set(ML_LABELS) for d in after.values())  # every label scored, 1.0 or 0.0
    removed = read_lines(run / "review/removed.jsonl")
    assert removed[0]["annotation"] == rows[1]["meta"]["exported_labels"]

    # a re-export shows the teacher's set; a second import of the same file changes nothing
    export_run(run, tmp_path / "again.jsonl")
    again = {r["meta"]["evokd_id"]: r for r in read_lines(tmp_path / "again.jsonl")}
    first = again[rows[0]["meta"]["evokd_id"]]
    assert first["meta"]["reviewed"] == "corrected" and first["meta"]["teacher_annotation"] == rows[0]["labels"]
    assert first["accept"] == sorted(added) and first["_task_hash"] != rows[0]["_task_hash"]
    rewritten = (run / "rounds/round_001.spacy").read_bytes()
    result = cli("import-review", run, reviewed)
    assert result.exit_code == 0 and "0 corrected, 0 removed" in result.output
    assert (run / "rounds/round_001.spacy").read_bytes() == rewritten


def test_bad_multilabel_review_lines(ml_run, tmp_path):
    run = copy_run(ml_run, tmp_path / "run")
    before = (run / "rounds/round_001.spacy").read_bytes()
    export_run(run, tmp_path / "out.jsonl")
    row = read_lines(tmp_path / "out.jsonl")[0]
    other = next(l for l in ML_LABELS if l not in row["labels"])
    cases = [
        (dict(row, accept=[]), "every text needs at least one label"),
        (dict(row, accept=row["accept"] + ["refunds"]), "label 'refunds' is not in the run's labels"),
        (dict(row, accept="billing"), '"accept" must be a list of labels'),
        (dict(row, accept=[other], labels=row["labels"] + [other]), "disagree; set one of them"),
        ({k: v for k, v in row.items() if k not in ("accept", "labels")}, "the reviewed labels are missing"),
    ]
    for bad, message in cases:
        path = write_lines(tmp_path / "reviewed.jsonl", [bad])
        with pytest.raises(DataError, match=re.escape(f"{path}:1: ")) as e:
            import_review(run, path)
        assert message in str(e.value) and "\n" not in str(e.value)
    assert (run / "rounds/round_001.spacy").read_bytes() == before and not (run / "review").exists()


def test_damaged_removed_list_stops_instead_of_letting_samples_back(runs, tmp_path):
    run = copy_run(runs["textcat"][0], tmp_path / "run")
    (run / "review").mkdir()
    (run / "review/removed.jsonl").write_text('{"text": "gone for good"}\n{"text": \n', encoding="utf8")
    with pytest.raises(RunDirError, match=re.escape(f"{run / 'review/removed.jsonl'}:2: damaged line")):
        removed_texts(run)


# -- the loop after a review ------------------------------------------------------------------


@pytest.mark.slow
def test_resumed_loop_trains_on_the_reviewed_round(runs, tmp_path):
    """Round 2 after a review replays the reviewed round 1 (one removed, one corrected)."""
    src, corpus = runs["textcat"]
    run = tmp_path / "run"
    shutil.copytree(src, run)
    export_run(run, tmp_path / "out.jsonl")
    rows = read_lines(tmp_path / "out.jsonl")
    rows[0]["answer"] = "reject"
    import_review(run, write_lines(tmp_path / "reviewed.jsonl", rows))
    evolve(ROOT / "configs/textcat_bow.cfg", run, _overrides(corpus, "textcat", rounds=2), echo=lambda _: None)
    rec1, rec2 = (json.loads((run / f"rounds/round_00{n}.json").read_text()) for n in (1, 2))
    seed = len(read_docbin(corpus / "seed.spacy"))
    assert rec2["train_size"] == seed + (rec1["accepted"] - 1) + rec2["accepted"]
    # a removed sample never returns: the loop counts it as seen, so the teacher's draw skips it
    assert rows[0]["text"] not in [d.text for d in read_docbin(run / "rounds/round_002.spacy")]
    from spacy_evokd.config import load_config
    from spacy_evokd.loop import EvoKDLoop

    loop = EvoKDLoop(
        load_config(ROOT / "configs/textcat_bow.cfg", _overrides(corpus, "textcat", rounds=3)), run, echo=lambda _: None
    )
    assert rows[0]["text"] in loop._seen_texts(3)
