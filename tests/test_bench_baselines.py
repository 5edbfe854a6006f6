"""The pool-sampling baselines of the targeting benchmark pick what they claim to pick, as many
as the EvoKD teacher would, and never a text already seen."""

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from baselines import EntropyPoolTeacher, RandomPoolTeacher, StratifiedPoolTeacher  # noqa: E402

from spacy_evokd.tasks import get_task  # noqa: E402
from spacy_evokd.ty import Analysis, RoundContext  # noqa: E402

POOL = ROOT / "assets/demo/textcat/train.jsonl"
LABELS = ["account", "billing", "product_question", "shipping", "technical"]


def _texts(proposal):
    return [s.text for s in proposal.samples]


def test_random_baseline_draws_unseen_texts_reproducibly():
    draws = []
    for _ in range(2):
        t = RandomPoolTeacher(str(POOL), get_task("textcat"), LABELS, seed=3)
        seen = [s.text for s in t.pool[:20]]
        t.begin_round(RoundContext(round=1, seen_texts=seen))
        first, second = _texts(t.propose(Analysis("x"), 2, 3)), _texts(t.propose(Analysis("x"), 2, 3))
        assert len(first) == len(second) == 5
        assert not set(first + second) & set(seen) and len(set(first + second)) == 10
        draws.append(first + second)
    assert draws[0] == draws[1]  # same seed and round: same draws (resume gives the same run)
    assert "random-sampling baseline" in t.name and t.simulated


def test_entropy_baseline_takes_the_most_uncertain_unseen_texts():
    t = EntropyPoolTeacher(str(POOL), get_task("textcat"), LABELS, seed=0)
    texts = [s.text for s in t.pool]
    t.begin_round(RoundContext(round=1, seen_texts=texts[:1]))
    # a hand-built uncertainty table instead of a student: the 6 highest are texts 0..5
    t._uncertainty = {text: 1.0 - i / len(texts) for i, text in enumerate(texts)}
    picked = _texts(t.propose(Analysis("x"), 2, 2)) + _texts(t.propose(Analysis("x"), 1, 1))
    assert picked == texts[1:7]  # text 0 was seen; labels come from the pool's gold
    assert all(s.annotation for s in t.label(picked).samples)
    assert "entropy-sampling baseline" in t.name


def test_stratified_baseline_balances_labels_and_never_repeats(tmp_path):
    rows = [json.loads(l) for l in POOL.read_text(encoding="utf8").splitlines()]
    by_label = {label: [r for r in rows if r["label"] == label] for label in LABELS}
    # an unbalanced pool: every billing text, 4 of each other label
    pool = tmp_path / "pool.jsonl"
    kept = by_label["billing"] + [r for label in LABELS if label != "billing" for r in by_label[label][:4]]
    pool.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf8")
    t = StratifiedPoolTeacher(str(pool), get_task("textcat"), LABELS, seed=1)
    gold = {s.text: s.annotation for s in t.pool}
    t.begin_round(RoundContext(round=1))
    picked = (
        _texts(t.propose(Analysis("x"), 3, 3))
        + _texts(t.propose(Analysis("x"), 2, 2))
        + _texts(t.propose(Analysis("x"), 3, 2))
    )
    assert len(picked) == len(set(picked)) == 15
    # 15 draws in 3 calls over 5 labels: 3 of each, though 36 of the pool's 52 texts are billing
    assert sorted(Counter(gold[x] for x in picked).values()) == [3, 3, 3, 3, 3]
    assert "label-stratified random-sampling baseline" in t.name


def test_stratified_baseline_on_ner_counts_entity_labels():
    pool = ROOT / "assets/demo/ner/train.jsonl"
    t = StratifiedPoolTeacher(str(pool), get_task("ner"), ["LOC", "ORG", "PER", "PRODUCT"], seed=0)
    t.begin_round(RoundContext(round=1))
    gold = {s.text: s.annotation for s in t.pool}
    picked = _texts(t.propose(Analysis("x"), 5, 5))
    labels = Counter(e[2] for text in picked for e in gold[text])
    # 10 turns over LOC, O (no entity), ORG, PER, PRODUCT: each drawn at least once
    assert len(picked) == 10 and set(labels) == {"LOC", "ORG", "PER", "PRODUCT"}
    assert any(not gold[text] for text in picked)


def test_cached_runs_are_keyed_on_code_config_and_data_not_on_temporary_paths(tmp_path):
    from runs import run_key
    from thinc.api import Config

    keys = []
    for work in (tmp_path / "run_a", tmp_path / "run_b"):  # two processes: two temporary folders
        work.mkdir()
        (work / "seed.spacy").write_bytes(b"seed")
        config = Config({"paths": {"train": str(work / "seed.spacy"), "dev": str(POOL)}, "training": {"max_steps": 10}})
        keys.append(run_key(config, [work / "seed.spacy", POOL], "code1", work))
    assert keys[0] == keys[1]
    (work / "seed.spacy").write_bytes(b"other seed")
    assert run_key(config, [work / "seed.spacy", POOL], "code1", work) != keys[1]  # the data
    (work / "seed.spacy").write_bytes(b"seed")
    assert run_key(config, [work / "seed.spacy", POOL], "code2", work) != keys[1]  # the code
    config["training"]["max_steps"] = 11
    assert run_key(config, [work / "seed.spacy", POOL], "code1", work) != keys[1]  # the config


def test_every_real_teacher_arm_builds_its_teacher_from_the_shipped_config(tmp_path):
    # a setting added to configs/teachers/local_server.cfg once broke the rival arms, whose
    # teachers don't take it, after an hour of the benchmark had run
    import bench_data
    import real_teacher
    from runs import write_seed

    from spacy_evokd.config import resolve_evokd

    prep = bench_data.prepare_demo(ROOT / "assets/demo", "textcat", tmp_path)
    write_seed(prep, 1, 0, tmp_path / "seed.spacy")
    built = {}
    for arm in real_teacher.ARMS + tuple(real_teacher.ABLATIONS):
        config = real_teacher.config_for(
            arm, prep, tmp_path / "seed.spacy", 0, real_teacher.Settings(), "http://127.0.0.1:9/v1"
        )
        settings, teacher = resolve_evokd(config)  # builds the teacher; no request is sent
        built[arm] = (type(teacher).__name__, settings.max_tokens_per_round, settings, teacher)
    assert built["llm_pool"][0] == "RandomPoolLLMTeacher" and built["simulated"][0] == "SimulatedTeacher"
    assert built["evokd"][0] == built["guided_pool"][0] == built["plain"][0] == "LLMTeacher"
    # the same teacher-token budget per round for every LLM arm
    assert {b[1] for arm, b in built.items() if arm != "simulated"} == {real_teacher.Settings().tokens_per_round}
    # the arms are the product's settings: the paper preset, the student's brief, the pool sources
    assert built["paper"][2].preset == built["wo_easy"][2].preset == "paper" and built["wo_easy"][2].n_easy == 0
    assert built["evokd"][2].analysis == "student" and built["auto_vote"][2].second_vote
    # plain generation is the product's analysis = "none", the labels written with the texts
    assert built["plain"][2].analysis == built["auto_plain"][2].analysis == "none"
    assert not built["plain"][2].separate_labelling and built["auto_plain"][2].source == "auto"
    # a pool draw is one labelling request's worth (16 at a time left rounds' tokens unspent); an
    # analysis of guided_pool picks pool_batch texts
    per_draw = {a: built[a][2].n_hard + built[a][2].n_easy for a in ("llm_pool", "guided_pool")}
    assert per_draw == {"llm_pool": 4, "guided_pool": real_teacher.Settings().pool_batch}
    assert {built[a][2].source for a in ("active", "auto", "guided_pool")} == {"active", "auto", "pool"}
    # the stratified rival draws evenly over the pool's gold labels (5 labels, 36 texts each)
    stratified, uniform = built["llm_pool_stratified"][3], built["llm_pool"][3]
    assert stratified.strata and not uniform.strata
    gold = {t: label for label, texts in stratified.strata.items() for t in texts}
    picked = [s.text for s in stratified.propose(None, 5, 5).samples]
    assert len(picked) == 10 and sorted(Counter(gold[t] for t in picked).values()) == [2] * 5


def test_teacher_labels_of_pool_texts_are_scored_against_the_pool_gold(tmp_path):
    # the real-teacher benchmark's "vs gold" column: texts from the pool are judged against its
    # gold labels, texts the teacher wrote (not in the pool) are not counted
    import bench_data
    import real_teacher
    import spacy

    from spacy_evokd.data import jsonl_to_docs, write_docbin
    from spacy_evokd.tasks import get_task

    nlp = spacy.blank("en")
    for task in ("textcat", "ner"):
        prep = bench_data.prepare_demo(ROOT / "assets/demo", task, tmp_path / task)
        gold = jsonl_to_docs(prep.pool, get_task(task), nlp, prep.labels)
        if task == "ner":
            gold = [d for d in gold if d.ents][:2]
        right, wrong = gold[0], gold[1]
        if task == "textcat":  # another label than gold
            other = next(k for k, v in wrong.cats.items() if not v)
            wrong.cats = {k: float(k == other) for k in wrong.cats}
        else:  # one entity dropped
            wrong.ents = list(wrong.ents)[1:]
        written = nlp("A text the teacher wrote itself, not in the pool.")
        run = tmp_path / task / "run"
        write_docbin([right], run / "rounds/round_001.spacy")
        write_docbin([wrong, written], run / "rounds/round_002.spacy")
        measured = real_teacher.teacher_vs_gold(run, prep, [1, 2])
        assert measured["texts"] == 2 and measured["exact"] == 0.5
        if task == "ner":
            n_gold = len(right.ents) + len(wrong.ents) + 1
            n_pred = len(right.ents) + len(wrong.ents)
            assert abs(measured["entity_f1"] - 2 * n_pred / (n_pred + n_gold)) < 1e-9
    assert real_teacher.teacher_vs_gold(run, prep, []) is None


def test_real_teacher_runs_on_another_port_share_their_cache_key(tmp_path):
    # a second benchmark process (--real-port) must reuse the first one's finished runs
    import bench_data
    import real_teacher
    from runs import run_key, write_seed

    prep = bench_data.prepare_demo(ROOT / "assets/demo", "textcat", tmp_path)
    write_seed(prep, 1, 0, tmp_path / "seed.spacy")
    keys = []
    for url in ("http://127.0.0.1:8095/v1", "http://127.0.0.1:8096/v1"):
        config = real_teacher.config_for("evokd", prep, tmp_path / "seed.spacy", 0, real_teacher.Settings(), url)
        assert url in config.to_str()
        keys.append(run_key(config, [tmp_path / "seed.spacy", prep.pool], "code1", tmp_path, url))
    assert keys[0] == keys[1]
    assert run_key(config, [tmp_path / "seed.spacy", prep.pool], "code1", tmp_path) != keys[0]  # without it: differ


def test_real_teacher_arms_of_a_seed_share_one_seed_round(tmp_path):
    # round 0 trains the student on the seed alone: the arms of a seed keep it once and resume
    # after it, as after an interruption, instead of retraining the same student
    import bench_data
    import real_teacher
    from runs import write_seed

    from spacy_evokd.run_dir import RunDir

    prep = bench_data.prepare_demo(ROOT / "assets/demo", "textcat", tmp_path)
    write_seed(prep, 1, 0, tmp_path / "seed.spacy")
    s = real_teacher.Settings()

    def shared(arm, seed=0, url="http://127.0.0.1:8095/v1", code="code1"):
        config = real_teacher.config_for(arm, prep, tmp_path / "seed.spacy", seed, s, url)
        return real_teacher.seed_round_dir(
            tmp_path / "cache", prep, seed, config, tmp_path / "seed.spacy", code, tmp_path
        ), config

    auto_dir, auto_config = shared("auto")
    assert shared("plain")[0] == shared("paper", url="http://127.0.0.1:8096/v1")[0] == auto_dir
    assert shared("auto", seed=1)[0] != auto_dir and shared("auto", code="code2")[0] != auto_dir

    first = RunDir(tmp_path / "first")
    first.rounds_dir.mkdir(parents=True)
    (first.model_path(0) / "model-best").mkdir(parents=True)
    (first.model_path(0) / "model-best" / "meta.json").write_text("{}")
    first.record_path(0).write_text(json.dumps({"round": 0}))
    assert not real_teacher.reuse_seed_round(auto_dir, tmp_path / "second", auto_config)  # nothing kept yet
    real_teacher.keep_seed_round(first, auto_dir)
    assert real_teacher.reuse_seed_round(auto_dir, tmp_path / "second", auto_config)
    second = RunDir(tmp_path / "second")
    assert second.committed() == [0] and (second.student_path(0) / "meta.json").exists()
    assert second.config_path.read_text() == auto_config.to_str()
