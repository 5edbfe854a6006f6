"""Typed run-directory records (records.py): what is written reads back the same, and records
written before they carried a schema version (version 1: no ``task``, no ``schema_version``)
still load, so an old run directory resumes and reports."""

import json
from dataclasses import asdict

import pytest

from spacy_evokd.records import SCHEMA_VERSION, RoundRecord, SelectionBatch
from spacy_evokd.report import write_report
from spacy_evokd.run_files import RunDirError
from spacy_evokd.tasks import get_task
from spacy_evokd.ty import Judged


def v1_record(n: int, dev: dict) -> dict:
    """A round record as spacy-evokd 0.1 wrote it."""
    # a Sample as 0.1 stored it: every task's annotation field, the unused ones None
    sample = dict(
        text="Anna flew to Rome", label=None, labels=None, intent=None, confidence=None, confidence_method=None
    )
    gold = dict(sample, entities=[[0, 4, "PER"], [13, 17, "LOC"]])
    pred = dict(sample, entities=[[0, 4, "PER"]])
    return {
        "round": n,
        "teacher": "test-llm",
        "simulated": False,
        "analyses": ["It misses places."] if n else [],
        "generated": 4 * n,
        "accepted": 3 * n,
        "rejected": {"duplicate": n} if n else {},
        "accepted_per_label": {"LOC": 2 * n},
        "batch_scores": None,
        "usage": {
            "requests": 3 * n,
            "prompt_tokens": 100 * n,
            "completion_tokens": 20 * n,
            "total_tokens": 120 * n,
            "cost": 0.0,
            "cached": 0,
            "estimated": False,
        },
        "dev": dict(
            dev, score=dev.get("ents_f", dev.get("macro_f")), per_label={"PER": {"p": 1, "r": 1, "f": 1, "support": 1}}
        ),
        "feedback": {"correct": [], "wrong": [{"gold": gold, "pred": pred}]},
        "train_size": 5 + 3 * n,
        "seconds": {"total": 1.0},
        "stopped_by": None,
    }


def test_a_version_1_round_record_loads_with_its_task(tmp_path):
    for dev, task in (
        ({"ents_f": 0.4, "ents_p": 0.5, "ents_r": 0.3}, "ner"),
        ({"macro_f": 0.6, "accuracy": 0.7}, "textcat"),
    ):
        path = tmp_path / f"round_001_{task}.json"
        path.write_text(json.dumps(v1_record(1, dev)))
        rec = RoundRecord.load(path, 1)
        assert (rec.schema_version, rec.task, rec.accepted, rec.dev["score"]) == (
            1,
            task,
            3,
            dev.get("ents_f", dev.get("macro_f")),
        )
    # JSON has no tuples: the feedback comes back as the spans it was written from
    judged = rec.judged(get_task("ner"))[0]  # the feedback of both records is ner samples
    assert (judged.gold.annotation, judged.pred.annotation) == ([(0, 4, "PER"), (13, 17, "LOC")], [(0, 4, "PER")])
    # written back, the annotation keeps the key (and the form) the record had: prompts and old readers see "entities"
    assert judged.to_dict(get_task("ner"))["gold"]["entities"] == [[0, 4, "PER"], [13, 17, "LOC"]]
    assert Judged.from_dict(json.loads(json.dumps(judged.to_dict(get_task("ner")))), get_task("ner")) == judged


def test_a_textcat_record_of_0_1_reads_its_label():
    """0.1 stored every task's field: the task reads its own, whatever the others hold."""
    item = {
        "gold": {"text": "Where is it?", "label": "shipping", "entities": None, "labels": None},
        "pred": {"text": "Where is it?", "label": "billing", "entities": None, "labels": None, "confidence": 0.6},
    }
    judged = Judged.from_dict(item, get_task("textcat"))
    assert (judged.gold.annotation, judged.pred.annotation, judged.pred.confidence) == ("shipping", "billing", 0.6)


def test_a_round_record_reads_back_what_was_written(tmp_path):
    rec = RoundRecord.load(_write(tmp_path / "v1.json", v1_record(2, {"macro_f": 0.5})))
    rec.task, rec.schema_version = "textcat", SCHEMA_VERSION
    rec.save(tmp_path / "round_002.json")
    assert json.loads((tmp_path / "round_002.json").read_text())["schema_version"] == SCHEMA_VERSION == 2
    assert RoundRecord.load(tmp_path / "round_002.json", 2) == rec


def test_an_old_run_directory_reports(tmp_path):
    """A run directory written by 0.1 (ner): the report tells its task from the records."""
    rounds = tmp_path / "run/rounds"
    rounds.mkdir(parents=True)
    for n in range(3):
        _write(rounds / f"round_{n:03d}.json", v1_record(n, {"ents_f": 0.2 + n / 10, "ents_p": 0.5, "ents_r": 0.3}))
    text = write_report(tmp_path / "run").read_text()
    assert "task: **ner**" in text and "best dev entity F1: **0.400** in round 2" in text


def test_a_damaged_record_is_one_line_naming_it(tmp_path):
    path = _write(tmp_path / "round_001.json", dict(v1_record(1, {"macro_f": 0.5}), seconds="soon"))
    with pytest.raises(RunDirError, match=r"round_001.json: damaged round record \('seconds' is not a dict\)"):
        RoundRecord.load(path, 1)


def test_a_selection_batch_reads_back_and_a_version_1_batch_loads(tmp_path):
    batch = SelectionBatch(
        batch=0,
        pool=4,
        valid=3,
        kept=1,
        rejected={"duplicate": 1},
        methods={"logprobs": 3},
        thresholds={"teacher": {"tau": 0.5}, "student": {"tau": 0.2}},
        usage={"requests": 1},
        texts=["a", "b", "c"],
        task="textcat",
    )
    batch.save(tmp_path / "selected_0000.json")
    assert SelectionBatch.load(tmp_path / "selected_0000.json") == batch
    old = {k: v for k, v in asdict(batch).items() if k not in ("task", "schema_version")}
    loaded = SelectionBatch.load(_write(tmp_path / "selected_0001.json", old))
    assert (loaded.schema_version, loaded.kept, loaded.texts) == (1, 1, ["a", "b", "c"])
    with pytest.raises(RunDirError, match=r"selected_0002.json: damaged batch record"):
        SelectionBatch.load(_write(tmp_path / "selected_0002.json", dict(old, thresholds={})))


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def test_run_dir_reads_an_old_run_directory_without_writing(tmp_path):
    """RunDir on a run directory written before it existed: committed rounds, typed records,
    the rounds that have samples, DocBins whose user_data predates DocMeta, removed texts."""
    import spacy

    from spacy_evokd.augment import EvolvingAugmenter
    from spacy_evokd.data import write_docbin
    from spacy_evokd.doc_meta import DocMeta
    from spacy_evokd.run_dir import RunDir

    rounds = tmp_path / "rounds"
    rounds.mkdir()
    for n in range(3):
        _write(rounds / f"round_{n:03d}.json", v1_record(n, {"ents_f": 0.1 * n}))
    nlp = spacy.blank("en")
    old = {
        "intent": "hard",
        "confidence": None,
        "confidence_method": None,
        "round": 1,
        "teacher": "t",
        "source": "generate",
    }
    doc = nlp("Anna flew to Rome")
    doc.user_data["evokd"] = dict(old, weight=2.5, written_by_a_newer_version=True)
    write_docbin([doc], rounds / "round_001.spacy")
    write_docbin([nlp("Round three is not committed")], rounds / "round_003.spacy")
    (tmp_path / "review").mkdir()
    (tmp_path / "review/removed.jsonl").write_text(json.dumps({"evokd_id": "r001-0000-x", "text": "gone"}) + "\n")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    run = RunDir(tmp_path)
    assert run.committed() == [0, 1, 2] and run.generated_rounds() == [1]
    assert [r.round for r in run.load_records()] == [0, 1, 2] and run.load_record(2).task == "ner"
    assert run.removed_texts() == {"gone"} and run.review_log() == []
    (back,) = run.docs(1, nlp.vocab)
    meta = DocMeta.of(back)
    assert (meta.intent, meta.round, meta.training_weight, meta.sample_index) == ("hard", 1, 2.5, None)
    assert meta.to_dict() == back.user_data["evokd"]  # the stored keys are unchanged, unknown ones kept
    assert run.docs(2) == [] and run.round_model(0) is None  # no DocBin / no kept model: nothing, no error
    assert [p.name for p in EvolvingAugmenter(str(rounds)).files()] == ["round_001.spacy"]  # committed rounds only
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # read-only
    (rounds / "round_001.json").unlink()
    with pytest.raises(RunDirError, match="round 001 is missing but 002 exists"):
        run.load_records()


def test_doc_meta_writes_the_keys_validation_always_wrote():
    import spacy

    from spacy_evokd.doc_meta import DocMeta, update_meta

    assert DocMeta(intent="easy").to_dict() == {"intent": "easy", "confidence": None, "confidence_method": None}
    assert DocMeta.from_dict(None).training_weight == 1.0
    doc = spacy.blank("en")("a seed doc has no meta")
    assert DocMeta.of(doc) == DocMeta()
    update_meta(doc, round=2, weight=0.5)
    assert doc.user_data["evokd"] == {
        "intent": None,
        "confidence": None,
        "confidence_method": None,
        "round": 2,
        "weight": 0.5,
    }
    with pytest.raises(AttributeError, match="no field 'wieght'"):
        update_meta(doc, wieght=1.0)
