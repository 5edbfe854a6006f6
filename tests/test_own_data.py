"""A user's own data, end to end (issue 22): `init` from a labelled JSONL nobody shipped (6 labels),
`evolve` with the simulated teacher, `report`, `package`, a review and `retrain`; the two pools'
names; teacher text in the report shown as text only (issue 19, item 6)."""

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from spacy_evokd.config import POOL_DEFAULT_SOURCE, ConfigError, load_config, resolve_evokd
from spacy_evokd.data import DataError

# its module-scoped fixtures run once: the parallel run (-n 2 --dist loadgroup) keeps the file on one worker
pytestmark = pytest.mark.xdist_group("test_own_data")

ROOT = Path(__file__).resolve().parents[1]
TOPICS = {
    "weather": ["rain", "sunny skies", "a storm", "snowfall", "fog", "a heatwave", "wind gusts", "hail"],
    "sports": [
        "the football match",
        "a tennis final",
        "the marathon",
        "a basketball game",
        "the swim meet",
        "a cricket test",
        "the cycling race",
        "a boxing bout",
    ],
    "cooking": [
        "a lasagne recipe",
        "baking bread",
        "a curry",
        "grilled fish",
        "a chocolate cake",
        "pancakes",
        "a vegetable soup",
        "roast chicken",
    ],
    "travel": [
        "a flight to Lisbon",
        "a train to Vienna",
        "a hotel in Rome",
        "a ferry to Crete",
        "a road trip",
        "a hostel in Oslo",
        "a cruise",
        "a camping trip",
    ],
    "finance": [
        "my savings account",
        "a mortgage rate",
        "stock dividends",
        "the tax return",
        "a credit card bill",
        "an index fund",
        "the pension plan",
        "a car loan",
    ],
    "health": [
        "a sore throat",
        "back pain",
        "the flu vaccine",
        "a dentist visit",
        "high blood pressure",
        "a sprained ankle",
        "a migraine",
        "sleep problems",
    ],
}
FRAMES = [
    "What do you think about {}?",
    "I read a long article about {} today.",
    "Tell me more about {}, please.",
    "Yesterday we talked for hours about {}.",
    "Is there any news on {}?",
]
HOSTILE = [
    "![x](http://127.0.0.1:9/track.png)",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](http://127.0.0.1:9/c)",
    "<http://127.0.0.1:9/auto>",
    "www.example.com and http://127.0.0.1:9/bare",
    "```\n<img src=y>\n```",
    "a | pipe ` tick",
]
FAST = ["--training.max_steps", "30", "--training.eval_frequency", "10"]


def write_topics(path: Path, frames=FRAMES, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows = [{"text": f.format(t), "label": label} for label, things in TOPICS.items() for t in things for f in frames]
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "spacy_evokd", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def one_line_error(proc, *needles):
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("✘"), line
    for needle in needles:
        assert needle in line, line


@pytest.fixture(scope="module")
def initialised(tmp_path_factory):
    """`init` on the 6-label data, from the folder a user is in (a few seconds, no training)."""
    where = tmp_path_factory.mktemp("own")
    write_topics(where / "topics.jsonl", FRAMES[:2])
    write_topics(where / "test.jsonl", FRAMES[2:3], seed=2)
    init = cli("init", "textcat", "proj", "--data", "topics.jsonl", "--test", "test.jsonl", "--k", "2", cwd=where)
    assert init.returncode == 0, init.stderr
    return where, init.stdout


@pytest.fixture(scope="module")
def project(initialised):
    """... then `evolve` with the simulated teacher, 1 round, as init's next command says."""
    where, out = initialised
    evolve = cli(
        "evolve",
        "proj/config.cfg",
        "proj/training",
        "--evokd.rounds",
        "1",
        "--evokd.analyses_per_round",
        "2",
        *FAST,
        cwd=where,
    )
    assert evolve.returncode == 0, evolve.stderr[-3000:]
    return where, out, evolve.stdout


def test_init_writes_a_ready_project(initialised):
    where, out = initialised
    proj = where / "proj"
    assert "6 labels: cooking (16), finance (16), health (16), sports (16), travel (16), weather (16)" in out
    assert "seed 12 (2 per label)" in out and "test 48" in out
    assert "python -m spacy_evokd evolve proj/config.cfg proj/training" in out  # the next command, runnable as printed
    cfg = (proj / "config.cfg").read_text()
    assert "# FILL IN: what the texts are" in cfg and "# FILL IN: one line per label" in cfg
    config = load_config(proj / "config.cfg", {})
    assert config["evokd"]["labels"] == sorted(TOPICS) and config["evokd"]["label_definitions"] == {
        l: "" for l in TOPICS
    }
    assert config["paths"]["train"] == "proj/corpus/seed.spacy" and config["paths"]["test"] == "proj/corpus/test.spacy"
    from spacy_evokd.data import read_docbin

    dev, train = read_docbin(proj / "corpus/dev.spacy"), read_docbin(proj / "corpus/train.spacy")
    assert len(dev) + len(train) == 96 and not {d.text for d in dev} & {d.text for d in train}
    assert {l for d in dev for l, v in d.cats.items() if v} == set(TOPICS)  # every label in the dev split


def test_init_checks_labels_in_one_line(tmp_path):
    data = write_topics(tmp_path / "topics.jsonl", FRAMES[:2])
    labels = ",".join(sorted(TOPICS))
    one_line_error(
        cli("init", "textcat", "p", "--data", data, "--labels", labels + ",legal", cwd=tmp_path),
        "topics.jsonl",
        "'legal'",
        "never occurs",
    )
    wrong = next(i for i, l in enumerate(data.read_text().splitlines(), 1) if '"health"' in l)
    one_line_error(
        cli("init", "textcat", "p", "--data", data, "--labels", labels.replace("health,", ""), cwd=tmp_path),
        f"topics.jsonl:{wrong}",
        "'health'",
    )
    one_line_error(
        cli("init", "textcat", "p", "--data", data, "--k", "20", cwd=tmp_path), "has 16 examples, fewer than k=20"
    )
    one_line_error(cli("init", "textcat", "p", "--data", data, "--profile", "huge", cwd=tmp_path), "--profile 'huge'")
    assert not (tmp_path / "p" / "config.cfg").exists()


def test_the_two_pools_cannot_be_confused(initialised, tmp_path, caplog, monkeypatch):
    where, _ = initialised
    monkeypatch.chdir(where)  # the config's paths are relative to the folder init ran in
    config = where / "proj/config.cfg"
    unlabelled = tmp_path / "texts.jsonl"
    unlabelled.write_text("".join(json.dumps({"text": f"text number {i}"}) + "\n" for i in range(5)))
    # the unlabelled file given to the simulated teacher: the error says which pool is which
    with pytest.raises(DataError, match=r"labelled_pool: the simulated teacher answers .* \[evokd\] unlabelled_pool"):
        resolve_evokd(load_config(config, {"evokd.teacher.labelled_pool": str(unlabelled)}))
    # a pool-mode file while generating: never read, so it was meant for the teacher
    with pytest.raises(
        ConfigError, match=r"unlabelled_pool is read only with source .* \[evokd.teacher\] labelled_pool"
    ):
        resolve_evokd(load_config(config, {"evokd.unlabelled_pool": str(unlabelled), "evokd.source": "generate"}))
    # a pool and no source named: the loop uses the pool (config.POOL_DEFAULT_SOURCE)
    settings, _ = resolve_evokd(load_config(config, {"evokd.unlabelled_pool": str(unlabelled)}))
    assert settings.source == POOL_DEFAULT_SOURCE != "generate"
    # the old names still work, with a deprecation line each
    cfg = load_config(config, {"evokd.pool": str(unlabelled), "evokd.source": "pool"})
    cfg["evokd"]["teacher"]["pool"] = cfg["evokd"]["teacher"].pop("labelled_pool")
    settings, teacher = resolve_evokd(cfg)
    assert settings.unlabelled_pool == str(unlabelled) and teacher.simulated
    assert "[evokd] pool is deprecated" in caplog.text and "[evokd.teacher] pool is deprecated" in caplog.text


@pytest.mark.slow  # trains (init -> evolve -> report -> package): about a minute unloaded
def test_report_and_package_of_own_data(project, tmp_path):
    where, _, _ = project
    run = where / "proj/training"
    report = cli("report", "proj/training", cwd=where)
    assert report.returncode == 0, report.stderr
    md = (run / "report/report.md").read_text()
    assert "change from the seed-only student to round" in md and "95% bootstrap interval" in md and "48 docs)" in md
    assert "the rows are drawn in these proportions" in md and "Nothing was rejected: no rejections plot." in md
    assert not (run / "report/rejections.png").exists()
    pkg = cli("package", "proj/training", tmp_path / "packages", "--name", "evokd_topics", "--build", "none", cwd=where)
    assert pkg.returncode == 0, pkg.stderr
    folder = tmp_path / "packages/en_evokd_topics-0.1.0/en_evokd_topics/en_evokd_topics-0.1.0"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["evokd"]["test"]["n"] == 48 and meta["evokd"]["dev"]["n"] == 18
    setup_meta = json.loads((tmp_path / "packages/en_evokd_topics-0.1.0/meta.json").read_text())  # what setup.py reads
    assert any(r.startswith("spacy>=") for r in setup_meta["requirements"])  # as `spacy package` on the command line
    assert "(48 docs)" in meta["description"] and "(18 docs)" in meta["description"]
    from confection import Config

    assert all(v is None for v in Config().from_disk(folder / "config.cfg", interpolate=False)["paths"].values())
    assert "(48 docs)" in pkg.stdout and "(18 docs)" in pkg.stdout


def hostile_run(run: Path) -> Path:
    """A textcat run directory written by hand (no training): a seed round and one round whose
    analyses, sample texts and student predictions are hostile teacher text."""
    from spacy_evokd.records import RoundRecord
    from spacy_evokd.tasks import get_task
    from spacy_evokd.ty import Judged, Sample

    labels = ["cooking", "sports"]
    (run / "rounds").mkdir(parents=True)
    per_label = {l: {"p": 0.5, "r": 0.5, "f": 0.5, "support": 2} for l in labels}
    judged = [
        Judged(Sample(h, annotation="cooking"), Sample(h, annotation=HOSTILE[(i + 1) % len(HOSTILE)])).to_dict(
            get_task("textcat")
        )
        for i, h in enumerate(HOSTILE)
    ]
    for n in (0, 1):
        RoundRecord(
            round=n,
            teacher="test-llm",
            simulated=False,
            analyses=HOSTILE if n else [],
            generated=8 * n,
            accepted=8 * n,
            rejected={},
            accepted_per_label={"cooking": 8 * n},
            usage={
                "requests": n,
                "prompt_tokens": 10 * n,
                "completion_tokens": 5 * n,
                "total_tokens": 15 * n,
                "cost": 0.0,
                "cached": 0,
                "estimated": False,
            },
            batch_scores=None,
            dev={"score": 0.4 + n / 10, "macro_f": 0.4 + n / 10, "accuracy": 0.5, "n": 4, "per_label": per_label},
            feedback={"correct": [], "wrong": judged if n else []},
            train_size=2 + 8 * n,
            seconds={"total": 1.0},
            task="textcat",
        ).save(run / "rounds" / f"round_{n:03d}.json")
    return run


def test_report_shows_teacher_text_as_text(tmp_path):
    """Hostile analyses, sample texts and predictions (issue 19, item 6): report.md keeps them in
    code spans / fenced blocks, so a renderer that allows raw HTML (as GitHub's does) makes no
    image, link or HTML of them; report.html has no link, no raw HTML and no image but the
    report's own plots."""
    from spacy_evokd.report import write_report

    run = hostile_run(tmp_path / "run")
    md = write_report(run).read_text()
    plots = {p.name for p in (run / "report").glob("*.png")}
    assert "dev_score.png" in plots
    rendered = MarkdownIt("commonmark").enable("table").render(md)  # raw HTML allowed
    html = (run / "report/report.html").read_text()
    for page in (rendered, html):
        assert "<a " not in page and "<script" not in page and "<img src=x" not in page and "<img src=y" not in page
        assert set(_imgs(page)) == plots
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "![x](http://127.0.0.1:9/track.png)" in html
    assert len(re.findall(r"^`{3,}text$", md, flags=re.M)) == len(HOSTILE)  # every analysis in its own block


def _imgs(html: str):
    return re.findall(r"<img src=\"([^\"]*)\"", html)


@pytest.mark.slow  # trains twice (evolve, retrain)
def test_review_then_retrain(project, tmp_path):
    """After import-review the command says model-best is the pre-review student; `retrain` trains
    one on the reviewed data; the report counts what the review left and has a review section."""
    import shutil

    where, _, _ = project
    run = tmp_path / "run"
    shutil.copytree(where / "proj/training", run)
    export = tmp_path / "export.jsonl"
    assert cli("export", run, export, cwd=where).returncode == 0
    rows = [json.loads(l) for l in export.read_text().splitlines()]
    rows[0]["answer"] = "reject"
    export.write_text("".join(json.dumps(r) + "\n" for r in rows))
    imported = cli("import-review", run, export, cwd=where)
    assert imported.returncode == 0, imported.stderr
    assert "still the students trained before this review" in imported.stdout and "retrain" in imported.stdout
    retrain = cli("retrain", run, cwd=where)
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    info = json.loads((run / "retrained/retrained.json").read_text())
    assert info["generated"] == len(rows) - 1 and info["train_size"] == 12 + len(rows) - 1
    assert (run / "retrained/model-best/meta.json").exists() and info["test"]["n"] == 48
    from spacy_evokd.report import write_report

    md = write_report(run).read_text()
    assert (
        "## Review" in md and f"the rounds now hold {len(rows) - 1} accepted samples ({len(rows)} before review)" in md
    )
    assert (
        f"- accepted samples: {len(rows) - 1} (after review)" in md and "A student retrained on the reviewed data" in md
    )
