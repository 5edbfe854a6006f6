"""Fail fast, in one line: everything that can be known to be wrong is reported before the seed
round trains or anything is written ([evokd] schema, output directory, data files, label
coverage, the teacher's key and server), and the CLI says it in one `✘` line, exit 1."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from typer.testing import CliRunner

from spacy_evokd.config import ConfigError, load_config
from spacy_evokd.data import DataError, jsonl_to_docs, read_docbin, write_docbin
from spacy_evokd.loop import EvoKDLoop, evolve
from spacy_evokd.models.openai_compatible import OpenAICompatible, TeacherRequestError
from spacy_evokd.tasks import get_task
from spacy_evokd.testing.responder import PoolResponder
from spacy_evokd.testing.server import FakeOpenAIServer

from .conftest import write_demo_corpus

ROOT = Path(__file__).parent.parent
CFG = ROOT / "configs/textcat_bow.cfg"
LOCAL = ROOT / "configs/teachers/local_server.cfg"
LABELS = ["account", "billing", "product_question", "shipping", "technical"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Demo textcat data as DocBins, a 1-shot seed and a seed without 'shipping'."""
    out = write_demo_corpus(tmp_path_factory.mktemp("corpus"), "textcat", LABELS, splits=("dev", "test"))
    write_docbin(
        [d for d in read_docbin(out / "seed.spacy") if d.cats["shipping"] == 0.0], out / "seed_no_shipping.spacy"
    )
    return out


def ov(corpus, **extra):
    return {
        "evokd.analysis": "llm",  # the EvoKD loop's analysis path (the default is plain generation)
        "paths.train": str(corpus / "seed.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "paths.test": str(corpus / "test.spacy"),
        **extra,
    }


def cli(*args):
    return subprocess.run([sys.executable, "-m", "spacy_evokd", *map(str, args)], capture_output=True, text=True)


def cli_in_process(*args):
    """The same CLI in this process (no interpreter start): for the many quick error cases."""
    from spacy_evokd.cli import app

    result = CliRunner().invoke(app, list(map(str, args)))
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def assert_one_line(proc, message):
    assert proc.returncode == 1, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("✘ ") and message in last and proc.stderr.count("✘") == 1, proc.stderr[-1500:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- item 7: the [evokd] schema ---------------------------------------------------------------


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"evokd.rounds": "abc"}, "[evokd] rounds: 'abc' is not an integer"),
        ({"evokd.n_hard": -1}, "[evokd] n_hard: must be >= 0, got -1"),
        ({"evokd.warm_start": 1}, "[evokd] warm_start: 1 is not true or false"),
        ({"evokd.history_replay": 1.5}, "[evokd] history_replay: must be <= 1.0, got 1.5"),
        ({"evokd.max_cost": "lots"}, "[evokd] max_cost: 'lots' is not a number"),
        (
            {"evokd.task": "textcats"},
            "[evokd] task: 'textcats': expected one of 'textcat', 'ner' or 'textcat_multilabel'",
        ),
        ({"evokd.labels": "billing"}, "[evokd] labels: 'billing' is not a list"),
        ({"evokd.labels": ["billing", "billing"]}, "[evokd] labels: 'billing' is listed twice"),
        ({"evokd.roundz": 3}, "[evokd] has unknown setting 'roundz'"),
        ({"evokd.n_hard": 0, "evokd.n_easy": 0}, "n_hard and n_easy are both 0"),
        (
            {"evokd.preset": "paper", "evokd.analysis": "student"},
            "[evokd] preset = \"paper\" runs EvoKD as published: analysis = 'student' is not the paper's ('llm')",
        ),
        ({"evokd.preset": "papers"}, "[evokd] preset: 'papers': expected one of '' or 'paper'"),
        ({"evokd.teacher.label_noise": "high"}, "[evokd.teacher] label_noise: 'high' is not float"),
    ],
)
def test_evokd_settings_are_validated_before_any_work(corpus, tmp_path, extra, message):
    with pytest.raises(ConfigError) as err:
        evolve(CFG, tmp_path / "run", ov(corpus, **extra), echo=lambda _: None)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_paper_preset_pins_the_published_loop_and_keeps_its_ablations():
    from spacy_evokd.config import PAPER_SETTINGS, validate_settings

    base = {"task": "textcat", "labels": ["a", "b"], "preset": "paper"}
    paper = validate_settings({**base, "n_easy": 0, "show_correct": False, "separate_labelling": False})
    assert {k: getattr(paper, k) for k in PAPER_SETTINGS} == PAPER_SETTINGS
    assert (paper.n_easy, paper.show_correct, paper.separate_labelling) == (0, False, False)  # the ablations
    assert validate_settings({**base, "generations_per_brief": 1}).preset == "paper"  # the paper's value is fine
    with pytest.raises(ConfigError, match="source = 'active' is not the paper's"):
        validate_settings({**base, "source": "active", "unlabelled_pool": "pool.jsonl"})


def test_valid_settings_keep_their_types(corpus):
    from spacy_evokd.config import resolve_evokd

    settings, _ = resolve_evokd(load_config(CFG, ov(corpus, **{"evokd.max_cost": 2, "evokd.rounds": 3})))
    assert settings.rounds == 3 and settings.max_cost == 2.0 and isinstance(settings.max_cost, float)
    assert settings.check_teacher is True and settings.metric == "macro-F1"


@pytest.mark.parametrize(
    "extra,message",
    [
        ({"base_url": "http://[::1"}, "[evokd.teacher.model] base_url 'http://[::1': not a URL (Invalid IPv6 URL)"),
        (
            {"base_url": "localhost:8080/v1"},
            "[evokd.teacher.model] base_url 'localhost:8080/v1': not a URL (expected http:// or https://",
        ),
        (
            {"base_url": "http://127.0.0.1:99999/v1"},
            "[evokd.teacher.model] base_url 'http://127.0.0.1:99999/v1': not a URL (Port out of range",
        ),
        ({"config.max_tokens": "lots"}, "[evokd.teacher.model.config] max_tokens: 'lots' is not an integer"),
        ({"config.max_tokens": -5}, "[evokd.teacher.model.config] max_tokens: must be >= 1, got -5"),
        ({"config.max_tokens": 1e23}, "[evokd.teacher.model.config] max_tokens: 1e+23 is not an integer"),
        ({"config.max_tokens": 10**9}, "[evokd.teacher.model.config] max_tokens: must be <= 1000000, got 1000000000"),
        ({"config.max_tokens": True}, "[evokd.teacher.model.config] max_tokens: True is not an integer"),
        ({"config.max_tokens": 9000}, "[evokd.teacher.model.config] max_tokens: 9000 is more than context_length 8192"),
        ({"config.temperature": "hot"}, "[evokd.teacher.model.config] temperature: 'hot' is not a number"),
        ({"config.temperature": -1}, "[evokd.teacher.model.config] temperature: must be >= 0, got -1"),
        ({"config.top_p": 0}, "[evokd.teacher.model.config] top_p: must be > 0, got 0"),
        ({"timeout": 0}, "[evokd.teacher.model] timeout: must be > 0, got 0"),
        ({"context_length": -1}, "[evokd.teacher.model] context_length: must be >= 1, got -1"),
        ({"tokens_per_minute": 0}, "[evokd.teacher.model] tokens_per_minute: must be >= 1, got 0"),
        ({"price_input_per_mtok": -1.0}, "[evokd.teacher.model] price_input_per_mtok: must be >= 0, got -1.0"),
    ],
)
def test_teacher_settings_are_validated_before_any_work(corpus, tmp_path, extra, message):
    """The teacher block's URL and numbers are checked with the [evokd] settings, before the
    seed round trains (a bad max_tokens used to fail at the first analysis, -5 was sent)."""
    extra = {f"evokd.teacher.model.{k}": v for k, v in extra.items()}
    with pytest.raises(ConfigError) as err:
        evolve(CFG, tmp_path / "run", ov(corpus, **extra), teacher=LOCAL, echo=lambda _: None)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_bad_base_url_is_one_cli_line(corpus, tmp_path):
    flags = [f"--{k}={v}" for k, v in ov(corpus).items()]
    proc = cli_in_process("estimate", CFG, "--teacher", LOCAL, *flags, "--evokd.teacher.model.base_url", "http://[::1")
    assert_one_line(proc, "[evokd.teacher.model] base_url 'http://[::1': not a URL")


@pytest.mark.parametrize("command", ["evolve", "estimate", "select"])
def test_every_cli_path_validates_the_config_first(corpus, tmp_path, command):
    args = {
        "evolve": [CFG, tmp_path / "run"],
        "estimate": [CFG],
        "select": [CFG, ROOT / "assets/demo/textcat/train.jsonl", tmp_path / "no-model", tmp_path / "run"],
    }[command]
    flags = [f"--{k}={v}" for k, v in ov(corpus).items()]
    proc = cli(command, *args, *flags, "--evokd.rounds", "abc")
    assert_one_line(proc, "[evokd] rounds: 'abc' is not an integer")
    assert not (tmp_path / "run").exists()


# -- item 8: output directory, data files, teacher -------------------------------------------


def test_output_path_that_is_a_file_is_one_line(corpus, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a run")
    with pytest.raises(ConfigError, match="output directory .*afile exists and is not a directory"):
        evolve(CFG, afile, ov(corpus), echo=lambda _: None)
    with pytest.raises(ConfigError, match="afile/run can't be created: .*afile is a file"):
        evolve(CFG, afile / "run", ov(corpus), echo=lambda _: None)
    assert afile.read_text() == "not a run"
    assert_one_line(
        cli("evolve", CFG, afile, *[f"--{k}={v}" for k, v in ov(corpus).items()]), "exists and is not a directory"
    )


@pytest.mark.skipif(not Path("/proc/sys").is_dir(), reason="needs Linux procfs")
def test_output_dir_nobody_can_write_is_one_line(corpus):
    """/proc/sys takes no new entries, not even from root (CI runs as root, so a chmod 555
    directory would prove nothing there): the run is refused in one line before any work."""
    target = Path("/proc/sys/evokd-run")
    with pytest.raises(
        ConfigError, match=r"output directory /proc/sys/evokd-run can't be written: /proc/sys is read-only"
    ):
        evolve(CFG, target, ov(corpus), echo=lambda _: None)
    assert not target.exists()
    assert_one_line(
        cli("evolve", CFG, target, *[f"--{k}={v}" for k, v in ov(corpus).items()]),
        "output directory /proc/sys/evokd-run can't be written",
    )


def test_jsonl_as_train_path_suggests_convert(corpus, tmp_path):
    jsonl = ROOT / "assets/demo/textcat/train.jsonl"
    with pytest.raises(
        DataError, match="train.jsonl: JSONL, not a DocBin: convert it first with `python -m spacy_evokd convert"
    ):
        evolve(CFG, tmp_path / "run", ov(corpus, **{"paths.train": str(jsonl)}), echo=lambda _: None)
    assert not (tmp_path / "run").exists()


def test_unreachable_teacher_fails_before_the_seed_round(corpus, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    proc = cli(
        "evolve",
        CFG,
        tmp_path / "run",
        "--teacher",
        LOCAL,
        f"--evokd.teacher.model.base_url={url}",
        *[f"--{k}={v}" for k, v in ov(corpus).items()],
    )
    assert_one_line(proc, f"teacher check: {url} is not reachable (ConnectError")
    assert "--skip-teacher-check" in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_teacher_check_is_one_get_and_can_be_skipped(corpus, tmp_path):
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), LABELS)
    with FakeOpenAIServer(responder) as server:
        config = load_config(CFG, ov(corpus, **{"evokd.teacher.model.base_url": server.base_url}), teacher=LOCAL)
        EvoKDLoop(config, tmp_path / "run", echo=lambda _: None)
        assert server.gets == ["/v1/models"] and server.requests == []  # no chat request, nothing paid
    down = f"http://127.0.0.1:{free_port()}/v1"
    config = load_config(CFG, ov(corpus, **{"evokd.teacher.model.base_url": down}), teacher=LOCAL)
    with pytest.raises(TeacherRequestError, match="is not reachable"):
        EvoKDLoop(config, tmp_path / "down", echo=lambda _: None)
    config = load_config(
        CFG, ov(corpus, **{"evokd.teacher.model.base_url": down, "evokd.check_teacher": False}), teacher=LOCAL
    )
    EvoKDLoop(config, tmp_path / "skipped", echo=lambda _: None)  # the user said the server comes later


def test_check_reachable_on_the_model():
    responder = PoolResponder(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), LABELS)
    with FakeOpenAIServer(responder) as server:
        OpenAICompatible(name="m", base_url=server.base_url, api_key_env=None).check_reachable()
        assert server.gets == ["/v1/models"]
    with pytest.raises(TeacherRequestError, match=r"127.0.0.1:\d+/v1 is not reachable \(ConnectError"):
        OpenAICompatible(name="m", base_url=f"http://127.0.0.1:{free_port()}/v1", api_key_env=None).check_reachable()


def test_missing_api_key_fails_in_preflight_and_estimate_needs_none(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    flags = [f"--{k}={v}" for k, v in ov(corpus).items()]
    openai_cfg = ROOT / "configs/teachers/openai.cfg"
    proc = cli_in_process("evolve", CFG, tmp_path / "run", "--teacher", openai_cfg, "--skip-teacher-check", *flags)
    assert_one_line(proc, "environment variable OPENAI_API_KEY is not set")
    assert not (tmp_path / "run").exists()
    est = cli_in_process("estimate", CFG, "--teacher", openai_cfg, *flags)  # sends nothing: needs no key
    assert est.returncode == 0, est.stderr[-1500:]
    assert "round 1: 12 requests" in est.stdout and "longest prompt" in est.stdout


# -- item 9: label coverage of the seed -------------------------------------------------------


def test_seed_without_a_configured_label_is_refused(corpus, tmp_path):
    seed = corpus / "seed_no_shipping.spacy"
    with pytest.raises(DataError) as err:
        evolve(CFG, tmp_path / "run", ov(corpus, **{"paths.train": str(seed)}), echo=lambda _: None)
    assert f"seed data {seed} has no example of label 'shipping' ([evokd] labels" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_extra_train_can_supply_the_missing_label(corpus, tmp_path):
    """Round 0 trains on seed + extra_train: a label found in the extra data is covered."""
    nlp = spacy.blank("en")
    docs = jsonl_to_docs(ROOT / "assets/demo/textcat/train.jsonl", get_task("textcat"), nlp)
    write_docbin([d for d in docs if d.cats["shipping"] == 1.0][:2], tmp_path / "extra.spacy")
    config = load_config(
        CFG,
        ov(
            corpus,
            **{
                "paths.train": str(corpus / "seed_no_shipping.spacy"),
                "evokd.extra_train": str(tmp_path / "extra.spacy"),
            },
        ),
    )
    loop = EvoKDLoop(config, tmp_path / "run", echo=lambda _: None)
    assert len(loop.extra_docs) == 2


# -- item 10: bad files through the CLI ------------------------------------------------------


def test_bad_jsonl_files_are_one_line_in_convert_and_seed(tmp_path):
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "a"}\n')
    long = tmp_path / "long.jsonl"
    long.write_text('{"text": "%s", "label": "a"}\n' % ("x" * 1_500_000))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b'\xef\xbb\xbf{"text": "fine", "label": "a"}\n')
    out = tmp_path / "out.spacy"
    cases = [
        (["convert", latin1, out, "--task", "textcat"], "latin1.jsonl:2: not UTF-8 (byte 0xe9"),
        (["seed", latin1, out, "--task", "textcat"], "latin1.jsonl:2: not UTF-8 (byte 0xe9"),
        (
            ["convert", long, out, "--task", "textcat"],
            "long.jsonl:1: text of 1,500,000 characters is longer than the limit of 1,000,000",
        ),
        (
            ["convert", bom, out, "--task", "textcats"],
            "unknown task 'textcats': expected one of textcat, ner, textcat_multilabel",
        ),
        (
            ["seed", bom, out, "--task", "textcats"],
            "unknown task 'textcats': expected one of textcat, ner, textcat_multilabel",
        ),
        (["convert", empty, out, "--task", "textcat"], "empty.jsonl: no records"),
    ]
    for args, message in cases:
        assert_one_line(cli_in_process(*args), message)
    assert not out.exists()
    ok = cli_in_process("convert", bom, out, "--task", "textcat")
    assert ok.returncode == 0 and "✔ 1 docs" in ok.stdout


def test_select_checks_its_inputs_before_creating_the_output_dir(corpus, tmp_path):
    from spacy_evokd.selection import run_selection

    pool = ROOT / "assets/demo/textcat/train.jsonl"
    with pytest.raises(DataError, match="no-model: no student model there"):
        run_selection(CFG, pool, tmp_path / "no-model", tmp_path / "sel", ov(corpus), echo=lambda _: None)
    with pytest.raises(DataError, match="corpus.*: can't load the student pipeline"):
        run_selection(CFG, pool, corpus, tmp_path / "sel", ov(corpus), echo=lambda _: None)
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        run_selection(CFG, tmp_path / "nope.jsonl", corpus, tmp_path / "sel", ov(corpus), echo=lambda _: None)
    assert not (tmp_path / "sel").exists()
    proc = cli_in_process(
        "select", CFG, pool, tmp_path / "no-model", tmp_path / "sel", *[f"--{k}={v}" for k, v in ov(corpus).items()]
    )
    assert_one_line(proc, "no-model: no student model there")
    assert not (tmp_path / "sel").exists()


# -- item 11: help text, bench ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["evolve", "estimate", "select"])
def test_help_keeps_the_config_section_names(command):
    from spacy_evokd.cli import app

    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "[evokd]" in result.output and "[evokd.teacher]" in result.output


def test_bench_names_the_data_dir_it_was_given(tmp_path):
    missing = tmp_path / "no-such-datasets"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/run.py"),
            "--data-dir",
            str(missing),
            "--only",
            "warm",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and f"--data-dir {missing} is not a directory" in proc.stderr
