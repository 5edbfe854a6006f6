"""Student metrics (macro-F1, accuracy, seqeval entity F1) and the weakness report."""

import pytest

from spacy_evokd.student import score
from spacy_evokd.tasks import get_task
from spacy_evokd.ty import Judged, Sample
from spacy_evokd.weakness import build_report, window


def tc(gold, pred, text="t"):
    return Judged(Sample(text, annotation=gold), Sample(text, annotation=pred))


def test_textcat_macro_f_and_accuracy():
    judged = [tc("a", "a"), tc("a", "b"), tc("b", "b"), tc("b", "b")]
    s = score(judged, get_task("textcat"), ["a", "b"])
    # a: p=1 r=.5 f=.667 ; b: p=.667 r=1 f=.8
    assert s["per_label"]["a"]["f"] == pytest.approx(2 / 3)
    assert s["per_label"]["b"]["f"] == pytest.approx(0.8)
    assert s["macro_f"] == pytest.approx((2 / 3 + 0.8) / 2)
    assert s["accuracy"] == 0.75 and s["score"] == s["macro_f"]


def test_ner_strict_entity_f1():
    text = "Tim Cook runs Apple in Cupertino"
    gold = [(0, 8, "PER"), (14, 19, "ORG"), (23, 32, "LOC")]
    pred = [(4, 8, "PER"), (14, 19, "ORG"), (23, 32, "ORG")]  # partial span, wrong label
    s = score(
        [Judged(Sample(text, annotation=gold), Sample(text, annotation=pred))], get_task("ner"), ["LOC", "ORG", "PER"]
    )
    assert s["ents_p"] == pytest.approx(1 / 3) and s["ents_r"] == pytest.approx(1 / 3)
    assert s["per_label"]["PER"]["f"] == 0.0 and s["per_label"]["ORG"]["r"] == 1.0
    assert s["per_label"]["ORG"]["p"] == 0.5


def test_report_splits_correct_and_wrong_and_counts_confusions():
    judged = [tc("a", "a", "1"), tc("a", "b", "2"), tc("a", "b", "3"), tc("b", "b", "4")]
    dev = {"score": 0.5, "macro_f": 0.5, "per_label": {"a": {"f": 0.2}, "b": {"f": 0.8}}}
    r = build_report(get_task("textcat"), ["a", "b"], dev, judged, "the seed data")
    assert [j.gold.text for j in r.wrong] == ["2", "3"] and len(r.correct) == 2
    assert r.confusions == {("a", "b"): 2}
    assert r.overall["macro_f"] == 0.5 and r.per_label["a"]["f"] == 0.2
    w = window(r, 1, 1, show_correct=False)
    assert w.correct == [] and [j.gold.text for j in w.wrong] == ["3"]


def test_ner_confusions_mark_missed_and_spurious():
    text = "Ann met Bob"
    judged = [
        Judged(
            Sample(text, annotation=[(0, 3, "PER"), (8, 11, "PER")]),
            Sample(text, annotation=[(0, 3, "ORG"), (4, 7, "LOC")]),
        )
    ]
    r = build_report(get_task("ner"), ["LOC", "ORG", "PER"], {"per_label": {}}, judged, "x")
    assert r.confusions == {("PER", "ORG"): 1, ("PER", "O"): 1, ("O", "LOC"): 1}


def test_ner_counts_give_the_score_of_any_resample():
    """ty.CountScored: the report's bootstrap sums NER's per-doc counts instead of scoring each
    resample; the sums must give seqeval's strict micro-F1 of the same docs, repeats included."""
    import random

    from spacy_evokd.tasks import get_task
    from spacy_evokd.ty import CountScored

    ner, labels = get_task("ner"), ["LOC", "ORG", "PER"]
    text = "Tim Cook runs Apple in Cupertino"
    gold = [(0, 8, "PER"), (14, 19, "ORG"), (23, 32, "LOC")]
    preds = [gold, [], [(4, 8, "PER"), (14, 19, "ORG")], [(0, 8, "ORG"), (23, 32, "LOC")], [(0, 3, "PER")]]
    judged = [Judged(Sample(text, annotation=gold), Sample(text, annotation=p)) for p in preds]
    judged.append(Judged(Sample("Nothing here", annotation=[]), Sample("Nothing here", annotation=[(0, 7, "ORG")])))
    assert isinstance(ner, CountScored)
    rows = ner.score_counts(judged, labels)
    assert rows[0] == (3, 3, 3) and rows[1] == (0, 0, 3) and rows[2] == (1, 2, 3) and rows[5] == (0, 1, 0)
    rng = random.Random(1)
    for _ in range(30):
        idx = [rng.randrange(len(judged)) for _ in judged]
        totals = [sum(c) for c in zip(*(rows[i] for i in idx))]
        assert ner.score_from_counts(totals) == pytest.approx(score([judged[i] for i in idx], ner, labels)["score"])


# -- the figures are spaCy's own: Scorer.score_cats as spaCy's textcat components report them


def _demo_judged(task_name: str, labels):
    """The demo dev split as gold, each third text mislabelled (task.mislabel) as the prediction."""
    import random

    from spacy_evokd.data import load_samples

    from .conftest import demo_jsonl

    task, rng = get_task(task_name), random.Random(0)
    gold = load_samples(demo_jsonl(task_name, "dev"), task, None)
    return [Judged(g, task.mislabel(g, labels, rng) if i % 3 == 0 else g) for i, g in enumerate(gold)]


def _spacy_cats(judged, task, labels, multi_label):
    """spaCy's Scorer.score_cats on Docs annotated by the task, as its textcat (multi_label=False)
    or textcat_multilabel component scores them."""
    import spacy
    from spacy.scorer import Scorer
    from spacy.training import Example

    nlp, examples = spacy.blank("en"), []
    for j in judged:
        pred, gold = nlp.make_doc(j.pred.text), nlp.make_doc(j.gold.text)
        assert task.annotate(pred, j.pred, labels) is None and task.annotate(gold, j.gold, labels) is None
        examples.append(Example(pred, gold))
    return Scorer.score_cats(examples, "cats", labels=labels, multi_label=multi_label)


@pytest.mark.parametrize("task_name,multi_label", [("textcat", False), ("textcat_multilabel", True)])
def test_choice_scores_equal_spacys_scorer_on_the_demo_data(task_name, multi_label):
    """Exactly (==) spaCy's figures, with a label of the set that is neither gold nor predicted
    anywhere ("refund": spaCy and we count it 0 in the macro average) and, for textcat, one that
    is gold but never predicted (``technical``: every such prediction made ``account``)."""
    from .conftest import TEXTCAT_LABELS

    labels = TEXTCAT_LABELS + ["refund"]
    task = get_task(task_name)
    judged = _demo_judged(task_name, TEXTCAT_LABELS)
    if task_name == "textcat":
        judged = [
            Judged(j.gold, Sample(j.pred.text, annotation="account")) if j.pred.annotation == "technical" else j
            for j in judged
        ]
        assert "technical" in {j.gold.annotation for j in judged} and "technical" not in {
            j.pred.annotation for j in judged
        }
    ours, theirs = task.score(judged, labels), _spacy_cats(judged, task, labels, multi_label)
    assert 0.3 < ours["macro_f"] < 1.0 and ours["per_label"]["refund"] == {"p": 0.0, "r": 0.0, "f": 0.0, "support": 0}
    assert ours["macro_f"] == ours["score"] == theirs["cats_macro_f"]
    assert {l: {k: v[k] for k in "prf"} for l, v in ours["per_label"].items()} == theirs["cats_f_per_type"]
    if multi_label:
        assert (ours["micro_f"], ours["macro_p"], ours["macro_r"]) == (
            theirs["cats_micro_f"],
            theirs["cats_macro_p"],
            theirs["cats_macro_r"],
        )


def test_textcat_prediction_without_a_label_is_a_miss_only():
    """A prediction with no label of the set (None: a student with empty cats; a name outside the
    set) misses its gold label and is no false positive: spaCy's exclusive-class scorer would take
    the argmax of all-zero scores and charge the first label (ChoiceTask.cat_scores says why we
    call its multi-label form)."""
    judged = [tc("a", "a"), tc("b", None), tc("b", "zzz"), tc("b", "b")]
    s = score(judged, get_task("textcat"), ["a", "b"])
    assert s["per_label"]["a"] == {"p": 1.0, "r": 1.0, "f": 1.0, "support": 1}
    assert s["per_label"]["b"]["p"] == 1.0 and s["per_label"]["b"]["r"] == pytest.approx(1 / 3)
    assert s["macro_f"] == pytest.approx((1.0 + 0.5) / 2) and s["accuracy"] == 0.5


@pytest.mark.parametrize("task_name", ["textcat", "textcat_multilabel"])
def test_choice_counts_give_the_score_of_any_resample(task_name):
    """ty.CountScored for the choice tasks: summed per-text counts give exactly (==) the macro-F1
    that spaCy's Scorer gives the same resampled texts (the report's bootstrap sums them)."""
    import random

    from spacy_evokd.ty import CountScored

    from .conftest import TEXTCAT_LABELS

    task, labels = get_task(task_name), TEXTCAT_LABELS + ["refund"]
    judged = _demo_judged(task_name, TEXTCAT_LABELS)
    assert isinstance(task, CountScored)
    rows, rng = task.score_counts(judged, labels), random.Random(1)
    assert len(rows) == len(judged) and all(len(r) == 3 * len(labels) for r in rows)
    for _ in range(20):
        idx = [rng.randrange(len(judged)) for _ in judged]
        totals = [sum(c) for c in zip(*(rows[i] for i in idx))]
        assert task.score_from_counts(totals) == task.score([judged[i] for i in idx], labels)["score"]
