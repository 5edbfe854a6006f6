"""Where a round's teacher tokens go: the student's brief, active picks, the planned budget and
source = "auto"'s split (weakness.student_brief, active.py, sources.py)."""

import json
import random

import pytest
import spacy
from spacy.training import Example

from spacy_evokd import active, sources
from spacy_evokd.augment import copies
from spacy_evokd.pool_source import PoolSource
from spacy_evokd.tasks import get_task
from spacy_evokd.teachers.simulated import SimulatedTeacher
from spacy_evokd.ty import BudgetExceeded, Judged, Sample, Usage
from spacy_evokd.validation import normalise
from spacy_evokd.weakness import build_report, student_brief

# its module-scoped fixtures run once: the parallel run (-n 2 --dist loadgroup) keeps the file on one worker
pytestmark = pytest.mark.xdist_group("test_sources")

LABELS = ["billing", "shipping", "technical"]


def judged(text, gold, pred):
    return Judged(Sample(text, annotation=gold), Sample(text, annotation=pred))


def report():
    dev = {"score": 0.5, "per_label": {"billing": {"f": 0.9}, "shipping": {"f": 0.2}, "technical": {"f": 0.6}}}
    batch = [
        judged("my card was charged twice", "billing", "billing"),
        judged("the router keeps rebooting", "technical", "shipping"),  # the rarer confusion
        judged("parcel stuck in customs for a week", "shipping", "billing"),
        judged("tracking says delivered but nothing came", "shipping", "billing"),
    ]
    return build_report(get_task("textcat"), LABELS, dev, batch, "the round 1 batch")


def test_student_brief_names_weakest_labels_top_confusion_and_its_wrong_examples_first(tmp_path):
    brief = student_brief(report(), get_task("textcat"), examples=2)
    lines = brief.text.splitlines()
    assert brief.conversation == []  # no call was made: the generation opens its own chat
    assert "shipping F1 0.20" in lines[1] and lines[1].index("shipping") < lines[1].index("technical") < lines[1].index(
        "billing"
    )
    assert "shipping -> billing x2" in lines[2] and "technical -> shipping x1" in lines[2]
    wrong = [l for l in lines if l.startswith("- got wrong")]
    # two examples shown, both of the most frequent confusion (the rarer one is left out)
    assert len(wrong) == 2 and all("correct: shipping; student: billing" in l for l in wrong)
    # the same ranking the simulated teacher's analysis aims at
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"text": "x", "label": "billing"}) + "\n")
    sim = SimulatedTeacher(str(pool), get_task("textcat"), LABELS).analyse(report(), [])
    assert brief.focus == pytest.approx(sim.focus)
    assert max(brief.focus, key=brief.focus.get) == "shipping"


def test_split_follows_what_each_source_bought_with_a_floor():
    even = sources.split(16, 4, [], 0.2, has_pool=True)
    assert (even["generate"], even["active"]) == (8, 8) and "even" in even["why"]
    assert sources.split(16, 4, [], 0.2, has_pool=False)["generate"] == 16
    # active's samples were mostly wrong for the student at the same cost: it gets the most,
    # generation keeps its floor (one request of 4)
    active_wins = [
        {
            "generate": {"cost": 100, "accepted": 8, "wrong": 0},
            "active": {"cost": 100, "accepted": 8, "wrong": 8},
            "dev_gain": 0.01,
        }
    ]
    split = sources.split(16, 4, active_wins, 0.2, has_pool=True)
    assert (split["generate"], split["active"]) == (4, 12)
    assert split["value"]["active"] > split["value"]["generate"] > 0 and "floor 20%" in split["why"]
    # the other way round, by cost: generation bought as many useful samples for a tenth of the tokens
    gen_wins = [
        {"generate": {"cost": 10, "accepted": 8, "wrong": 4}, "active": {"cost": 100, "accepted": 8, "wrong": 4}}
    ]
    split = sources.split(16, 4, gen_wins, 0.2, has_pool=True)
    assert split["generate"] == 12 and split["active"] == 4
    # a source never tried yet: no evidence, an even split
    assert sources.split(16, 4, [{"generate": {"cost": 10, "accepted": 8, "wrong": 4}}], 0.2, True)["generate"] == 8


def test_step_costs_plan_only_what_fits():
    costs = sources.StepCosts()
    assert costs.estimate("generate") == 0  # nothing seen: the first request is never refused
    costs.observe("label", Usage(requests=2, prompt_tokens=700, completion_tokens=100), texts=8)
    costs.observe("label", Usage(requests=1, prompt_tokens=250, completion_tokens=50), texts=4)
    assert costs.estimate("label", 8) == pytest.approx(8 * (100 + 75) / 2)
    assert sources.planned_stop([], 10_000, "x") is None  # no token budget
    assert sources.planned_stop([("max_tokens_per_round", 3000, 2000)], 1400, "x") is None
    both = [("max_tokens", 9000, 5000), ("max_tokens_per_round", 3000, 1000)]
    stop = sources.planned_stop(both, 1400, "a generation request")
    # what it would run into: the round's budget (the round ends, the run goes on)
    assert isinstance(stop, BudgetExceeded) and stop.per_round
    assert "max_tokens_per_round=3000" in str(stop) and "a generation request" in str(stop) and "1000 left" in str(stop)
    stop = sources.planned_stop([("max_tokens", 9000, 500)], 1400, "an analysis")
    assert not stop.per_round and "budget reached (max_tokens=9000" in str(stop)  # the run's: it stops
    by_source = sources.by_source(
        {
            "analysis": Usage(1, 300, 100),
            "label": Usage(2, 200, 20),
            "active_label": Usage(1, 90, 10),
            "pseudo_label": Usage(1, 1, 1),
        }
    )
    assert by_source["generate"].total_tokens == 620 and by_source["active"].total_tokens == 100 and len(by_source) == 2


def test_second_votes_are_planned_at_the_doubt_share_seen():
    """A vote is planned at the labelling step's tokens per text until a vote has been seen, for
    the share of texts found in doubt so far (one half before any were checked)."""
    costs = sources.StepCosts()
    costs.observe("label", Usage(requests=1, prompt_tokens=360, completion_tokens=40), texts=4)  # 100 a text
    assert sources.vote_tokens(costs, {"generate": 1, "label": 4}, asked=0, checked=0) == pytest.approx(200)
    assert sources.vote_tokens(costs, {"label": 4}, asked=9, checked=18) == pytest.approx(200)
    assert sources.vote_tokens(costs, {"label": 4}, asked=0, checked=98) == pytest.approx(4 * 100 / 100)
    costs.observe("label_vote", Usage(requests=1, prompt_tokens=500, completion_tokens=100), texts=2)  # 300 a text
    assert sources.vote_tokens(costs, {"label": 4}, asked=0, checked=0) == pytest.approx(600)
    assert sources.vote_tokens(costs, {"generate": 1, "analysis": 1}, asked=5, checked=5) == 0
    # active picks: their own step
    assert sources.vote_tokens(costs, {"active_label": 2}, asked=0, checked=0) == 0  # no active label seen yet


def test_weights_are_realised_as_copies_with_the_right_mean():
    rng = random.Random(0)
    assert [copies(1.0, rng) for _ in range(5)] == [1] * 5
    draws = [copies(2.25, rng) for _ in range(4000)]
    assert set(draws) == {2, 3} and abs(sum(draws) / len(draws) - 2.25) < 0.03


@pytest.fixture(scope="module")
def student_and_pool(tmp_path_factory):
    """A real (barely trained) tok2vec + textcat student and an unlabelled pool."""
    tmp = tmp_path_factory.mktemp("active")
    texts = [
        "my card was charged twice",
        "refund for the duplicate payment",
        "invoice shows the wrong amount",
        "where is my parcel now",
        "where is my parcel today",
        "where is my parcel please",
        "the courier lost my box",
        "the router keeps rebooting",
        "app crashes on login screen",
        "bluetooth will not pair with the speaker",
    ]
    pool = tmp / "pool.jsonl"
    pool.write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n")
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    textcat = nlp.add_pipe("textcat")
    for label in LABELS:
        textcat.add_label(label)
    gold = [("refund my money", "billing"), ("parcel is late", "shipping"), ("screen is broken", "technical")]
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {l: float(l == g) for l in LABELS}}) for t, g in gold]
    nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples)
    source = PoolSource(str(pool), "student")
    source.use_student(nlp)
    return nlp, source, texts


def test_active_picks_cover_predicted_labels_skip_seen_and_avoid_near_copies(student_and_pool):
    nlp, pool, texts = student_and_pool
    task = get_task("textcat")
    seen = {normalise(texts[0])}
    picks = active.pick(pool, nlp, task, 6, seen, ["refund my money"], stratified=True)
    assert len(picks) == 6 and texts[0] not in {p.text for p in picks}
    assert {normalise(p.text) for p in picks} <= seen  # the picks are marked used
    counts = {c: sum(p.predicted == c for p in picks) for c in {p.predicted for p in picks}}
    available = {}
    for doc in nlp.pipe(texts[1:]):
        c = task.sample_class(task.predicted_sample(doc))
        available[c] = available.get(c, 0) + 1
    # round-robin over the predicted labels: each label as often as the others while it has texts
    assert max(counts.values()) - min(counts.values()) <= 1 or any(counts[c] == available[c] for c in counts)
    assert all(0.0 <= p.need <= 1.0 for p in picks)
    # without stratification: no two of the three "where is my parcel ..." near-copies under
    # the same predicted label while distinct texts remain (coverage is within a predicted label)
    picks = active.pick(pool, nlp, task, 3, set(), [], stratified=False)
    parcel = [p.predicted for p in picks if p.text.startswith("where is my parcel")]
    assert len(parcel) == len(set(parcel))
    assert active.pick(pool, nlp, task, 5, {normalise(t) for t in texts}, [], stratified=False) == []
