"""`python -m spacy_evokd ...` (also installed as `spacy-evokd`).

Commands: init (a project from your own labelled data), evolve (the EvoKD loop), estimate (its expected teacher tokens and cost), select (LLKD selection from an unlabelled pool), convert
(JSONL -> DocBin), seed (k-shot sample), evaluate (a student on gold data), report (Markdown +
plots of a run), export / import-review (a run's generated samples for review, and the review
back), retrain (a student on the reviewed data), package (an installable student). Known errors print one line and exit 1; no traceback.
"""

import functools
import json
import logging
from pathlib import Path
from typing import List, Optional, Tuple

import typer

# no rich markup: it would eat the square brackets of "[evokd]" and "[evokd.teacher]" in help texts
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)

_CTX = {"allow_extra_args": True, "ignore_unknown_options": True}


def _fail(msg: str) -> None:
    typer.secho(f"✘ {msg}", fg="red", err=True)
    raise typer.Exit(1)


def _command(*args, also: Tuple[type, ...] = (), **kwargs):
    """``app.command`` whose errors a user is meant to read (ty.EvokdError: config, data, run
    directory, student training, teacher requests, the local server; plus ``also``) print one
    line and exit 1, no traceback: the one place commands turn errors into messages."""

    def register(fn):
        @functools.wraps(fn)  # typer reads the signature through __wrapped__
        def run(*a, **kw):
            from .ty import EvokdError

            try:
                return fn(*a, **kw)
            except (EvokdError,) + also as e:
                _fail(str(e))

        return app.command(*args, **kwargs)(run)

    return register


def _write(docs, path: Path) -> None:
    from .data import write_docbin

    try:
        write_docbin(docs, path)
    except OSError as e:  # a directory in the way, a read-only folder
        _fail(f"{path}: can't write the DocBin ({e.strerror or e})")


def _load_student(model: Path):
    from . import student
    from .data import DataError

    try:
        return student.load(model)
    except OSError as e:
        raise DataError(f"{model}: cannot load the pipeline ({e})") from None


def _labels(labels: Optional[str]) -> Optional[List[str]]:
    return [l.strip() for l in labels.split(",") if l.strip()] if labels else None


@_command("init")
def init(
    task: str = typer.Argument(..., help="textcat, textcat_multilabel or ner"),
    output_dir: Path = typer.Argument(..., help="project folder to write: corpus/ and config.cfg"),
    data: Path = typer.Option(
        ..., "--data", help="labelled JSONL ({text,label}, {text,labels} or {tokens,tags}) or .spacy"
    ),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="comma-separated label set to enforce; default: the labels in --data"
    ),
    dev: Optional[Path] = typer.Option(
        None, "--dev", help="labelled dev set; default: 20% of each label of --data is split off"
    ),
    test: Optional[Path] = typer.Option(None, "--test", help="labelled test set, scored in the report (optional)"),
    k: int = typer.Option(1, "--k", help="seed examples per label (NER: sentences per entity type)"),
    seed: int = typer.Option(0, "--seed", help="random seed of the split, the k-shot sample and the run"),
    teacher: str = typer.Option(
        "simulated",
        "--teacher",
        "-t",
        help="a shipped teacher (simulated, openai, local_server) or a file with [evokd.teacher]",
    ),
    profile: Optional[str] = typer.Option(
        None, "--profile", help="student profile: fast or accurate (default: init_project.DEFAULT_PROFILE, fast)"
    ),
    lang: str = typer.Option("en", "--lang"),
    force: bool = typer.Option(False, "--force", help="overwrite OUTPUT_DIR/config.cfg"),
):
    """Start a project from your own labelled data: check the labels, convert, split dev, draw
    the k-shot seed, write a ready config, print the next command."""
    from .init_project import DEFAULT_PROFILE, init_project

    init_project(
        task,
        output_dir,
        data,
        _labels(labels),
        dev=dev,
        test=test,
        k=k,
        seed=seed,
        teacher=teacher,
        profile=profile or DEFAULT_PROFILE,
        lang=lang,
        force=force,
        echo=typer.echo,
    )


@_command(context_settings=_CTX)
def evolve(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="student config with an [evokd] section"),
    output_dir: Path = typer.Argument(..., help="run directory (rerun the same command to resume)"),
    teacher: Optional[Path] = typer.Option(
        None, "--teacher", "-t", help="file whose [evokd.teacher] replaces the config's"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU for student training (-1: CPU)"),
    verbose: bool = typer.Option(False, "--verbose", "-V", help="log teacher calls"),
    skip_teacher_check: bool = typer.Option(
        False,
        "--skip-teacher-check",
        help="don't GET the teacher server's /models before the run (the same as --evokd.check_teacher false)",
    ),
    keep_models: Optional[str] = typer.Option(
        None,
        "--keep-models",
        help="per-round students to keep: all (default) or best (the best "
        "and the latest; the same as --evokd.keep_models best)",
    ),
):
    """Run the EvoKD loop. Extra `--section.key value` arguments override the config."""
    from spacy.cli._util import parse_config_overrides

    from .loop import evolve as run

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    overrides = parse_config_overrides(ctx.args)
    if gpu_id >= 0:
        overrides["evokd.gpu_id"] = gpu_id
    if skip_teacher_check:
        overrides["evokd.check_teacher"] = False
    if keep_models is not None:  # checked with the rest of [evokd] before any work
        overrides["evokd.keep_models"] = keep_models
    run(config, output_dir, overrides, teacher=teacher)


@_command(context_settings=_CTX, also=(ValueError,))
def select(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="student config with an [evokd] section (task, labels, teacher)"),
    pool: Path = typer.Argument(..., help='unlabelled pool, JSONL with "text" (or "tokens"); streamed'),
    student_model: Path = typer.Argument(..., help="the student whose uncertainty counts (e.g. RUN/model-best)"),
    output_dir: Path = typer.Argument(..., help="where selected_NNNN.spacy go (rerun to resume)"),
    teacher: Optional[Path] = typer.Option(
        None, "--teacher", "-t", help="file whose [evokd.teacher] replaces the config's"
    ),
    mode: str = typer.Option("llkd", "--mode", help="llkd | teacher_only | student_only | fixed_ratio | all"),
    batch_size: int = typer.Option(32, "--batch-size", help="pool texts per batch (thresholds move per batch)"),
    k_samples: int = typer.Option(5, "--k", help="sampled answers per text when the server gives no logprobs"),
    momentum: float = typer.Option(0.9, "--momentum", help="moving-average momentum of the thresholds"),
    ratio: float = typer.Option(0.25, "--ratio", help="kept share per batch in fixed_ratio mode"),
    skip_teacher_check: bool = typer.Option(
        False, "--skip-teacher-check", help="don't GET the teacher server's /models first"
    ),
):
    """LLKD: pseudo-label a pool with the teacher, keep what it is sure of and the student is not.
    Extra `--section.key value` arguments override the config."""
    from spacy.cli._util import parse_config_overrides

    from .selection import run_selection

    overrides = parse_config_overrides(ctx.args)
    if skip_teacher_check:
        overrides["evokd.check_teacher"] = False
    run_selection(
        config,
        pool,
        student_model,
        output_dir,
        overrides,
        teacher=teacher,
        mode=mode,
        batch_size=batch_size,
        k_samples=k_samples,
        momentum=momentum,
        ratio=ratio,
    )


@_command(context_settings=_CTX)
def estimate(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="student config with an [evokd] section"),
    teacher: Optional[Path] = typer.Option(
        None, "--teacher", "-t", help="file whose [evokd.teacher] replaces the config's"
    ),
):
    """Expected teacher tokens and cost of the configured run, before starting it."""
    from spacy.cli._util import parse_config_overrides

    from .estimate import estimate as run

    est = run(config, parse_config_overrides(ctx.args), teacher=teacher)
    if est["simulated"]:
        typer.echo(f"{est['teacher']}: simulated, no LLM calls: 0 tokens, $0")
        return
    t = est["total"]
    typer.echo(f"teacher {est['teacher']}, {est['rounds']} rounds (estimate, ~4 characters per token)")
    # rounds grow (history review, texts already written) up to their caps: one line each
    for n, r in enumerate(est["by_round"], start=1):
        typer.echo(
            f"  round {n}: {r['requests']} requests, {r['prompt_tokens']:,} prompt + {r['completion_tokens']:,} "
            f"completion tokens, ${r['cost']:.4f}"
        )
    typer.echo(
        f"  run:       {t['requests']} requests, {t['total_tokens']:,} tokens, ${t['cost']:.4f}; "
        f"longest prompt {est['longest_prompt_tokens']:,} tokens"
    )


@_command()
def convert(
    input_path: Path = typer.Argument(..., help="JSONL: {text,label}, {tokens,tags} or {text,labels}"),
    output_path: Path = typer.Argument(..., help=".spacy DocBin to write"),
    task: str = typer.Option(..., "--task", help="textcat, ner or textcat_multilabel"),
    labels: Optional[str] = typer.Option(None, "--labels", help="comma-separated label set to enforce"),
    lang: str = typer.Option("en", "--lang"),
):
    """Convert a JSONL data set to a DocBin."""
    import spacy

    from .data import jsonl_to_docs
    from .tasks import get_task

    docs = jsonl_to_docs(input_path, get_task(task), spacy.blank(lang), _labels(labels))
    _write(docs, output_path)
    typer.echo(f"✔ {len(docs)} docs -> {output_path}")


@_command()
def seed(
    input_path: Path = typer.Argument(..., help="labelled pool (JSONL or .spacy)"),
    output_path: Path = typer.Argument(..., help=".spacy DocBin of the k-shot seed"),
    task: str = typer.Option(..., "--task"),
    k: int = typer.Option(1, "--k", help="examples per label (NER: sentences per entity type)"),
    random_seed: int = typer.Option(0, "--seed"),
    labels: Optional[str] = typer.Option(None, "--labels", help="comma-separated; default: all in the data"),
    lang: str = typer.Option("en", "--lang"),
):
    """Sample a k-shot seed set (k per label), reproducibly."""
    import spacy

    from .data import infer_labels, kshot
    from .init_project import read_labelled
    from .tasks import get_task

    task = get_task(task)
    label_set = _labels(labels)
    docs = read_labelled(input_path, task, spacy.blank(lang), label_set)
    samples = [task.doc_to_sample(d) for d in docs]
    label_set = label_set or infer_labels(samples, task)
    chosen = kshot(samples, task, label_set, k, random_seed)
    _write([docs[i] for i in chosen], output_path)
    typer.echo(f"✔ {len(chosen)}-doc {k}-shot seed ({len(label_set)} labels) -> {output_path}")


@_command()
def evaluate(
    model: Path = typer.Argument(..., help="trained student (e.g. training/textcat/model-best)"),
    data: Path = typer.Argument(..., help="gold DocBin"),
    task: Optional[str] = typer.Option(None, "--task", help="default: from the pipeline"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="write metrics JSON here"),
):
    """Score a student: textcat macro-F1 + accuracy; ner entity-level F1 (seqeval, strict IOB2);
    textcat_multilabel macro- and micro-F1 at the component's threshold + exact-set accuracy."""
    from . import student
    from .data import DataError, read_docbin
    from .tasks import get_task

    nlp = _load_student(model)
    task = get_task(task) if task else student.task_of(nlp)
    docs = read_docbin(data, nlp.vocab)
    pipe = task.student_pipe(nlp)
    if pipe is None:
        raise DataError(f"{model}: no {task.name} component (pipeline: {nlp.pipe_names})")
    labels = list(nlp.get_pipe(pipe).labels)
    scores, _ = student.evaluate(nlp, docs, task, labels)
    typer.echo(" | ".join(f"{k} {scores[k]:.3f}" for k in task.main_score_keys) + f" | n={scores['n']}")
    for label, row in sorted(scores["per_label"].items()):
        typer.echo(f"  {label:<20} p {row['p']:.3f}  r {row['r']:.3f}  f {row['f']:.3f}  support {row['support']}")
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(scores, indent=2))


@_command(also=(FileNotFoundError,))  # no run there, or a damaged round record
def report(run_dir: Path = typer.Argument(..., help="an `evolve` output directory")):
    """Write RUN_DIR/report/report.md with PNG plots (scores, tokens, labels, rejections)."""
    from .report import write_report

    path = write_report(run_dir)
    headline = json.loads((path.parent / "summary.json").read_text(encoding="utf8"))["headline"]
    typer.echo(f"✔ report -> {path} (and report.html)\n  {headline}")


@_command("export")
def export_samples(
    run_dir: Path = typer.Argument(..., help="an `evolve` output directory"),
    output: Path = typer.Argument(..., help='JSONL to write: Prodigy/Argilla tasks with a "meta" per sample'),
    rejected: bool = typer.Option(
        False,
        "--rejected",
        help="also the rejected samples the round records keep, with their reason (import skips them)",
    ),
):
    """Write every accepted generated sample (round, intent, teacher, label/spans) for review."""
    from .review import export_run

    done = export_run(run_dir, output, rejected=rejected)
    extra = f" + {done['rejected']} rejected ({done['rejected_unkept']} more only counted)" if rejected else ""
    typer.echo(f"✔ {done['samples']} samples{extra} from {done['rounds']} rounds -> {output}")


@_command("import-review")
def import_review(
    run_dir: Path = typer.Argument(..., help="the `evolve` output directory the file was exported from"),
    reviewed: Path = typer.Argument(
        ..., help="the reviewed JSONL (answer accept/reject/ignore, edited label(s)/spans)"
    ),
):
    """Apply a reviewed export: corrected samples replace the teacher's, rejected ones are removed for good."""
    from .review import import_review as run
    from .run_dir import RunDir

    entry, files = run(run_dir, reviewed), RunDir(run_dir)
    t = entry["totals"]
    typer.echo(
        f"✔ review imported: {t['corrected']} corrected, {t['removed']} removed, {t['kept']} kept"
        + (f", {t['already_removed']} removed earlier" if t["already_removed"] else "")
        + f"; log: {files.review_log_path}"
    )
    typer.echo(
        f"ℹ {files.model_best}, the round models and any metrics/ or packages/ made from them are still "
        "the students trained before this review; resuming `evolve` trains only new rounds (on the reviewed "
        f"data). To train a student on the reviewed data now: python -m spacy_evokd retrain {run_dir}"
    )


@_command()
def retrain(run_dir: Path = typer.Argument(..., help="an `evolve` output directory (after import-review)")):
    """Train a student from scratch on the seed and every round as reviewed, into
    RUN_DIR/retrained/model-best (model-best stays the loop's); prints its dev (and test) score."""
    from .review import retrain as run
    from .run_dir import RunDir
    from .tasks import get_task

    info = run(run_dir, echo=typer.echo)
    keys = get_task(_run_task(run_dir)).main_score_keys
    for name in ("dev", "test"):
        if name in info:
            typer.echo(f"✔ {name}: " + ", ".join(f"{k} {info[name][k]:.3f}" for k in keys) + f" (n={info[name]['n']})")
    retrained = RunDir(run_dir).retrained_model
    typer.echo(
        f"✔ {retrained}; package it with: python -m spacy_evokd package {run_dir} "
        f"packages --name NAME --model {retrained}"
    )


def _run_task(run_dir: Path) -> str:
    from confection import Config

    from .run_dir import RunDir

    return Config().from_disk(RunDir(run_dir).config_path, interpolate=False)["evokd"]["task"]


@_command("package")
def package_cmd(
    run_dir: Path = typer.Argument(..., help="an `evolve` output directory"),
    output_dir: Path = typer.Argument(..., help="where the package folder (and its dist/ wheel) go"),
    name: str = typer.Option(..., "--name", help="package name (spaCy prefixes the language: en_NAME)"),
    version: str = typer.Option("0.1.0", "--version"),
    model: Optional[Path] = typer.Option(
        None, "--model", help="default RUN_DIR/model-best; e.g. RUN_DIR/retrained/model-best"
    ),
    test: Optional[Path] = typer.Option(
        None, "--test", help="gold DocBin for meta.json's test score; default: the run's paths.test"
    ),
    build: str = typer.Option("wheel", "--build", help="wheel or none"),
):
    """Package a run's student: every [paths] of its config null, dev and test scores with their
    sizes in meta.json; needs only spaCy (spacy-transformers for a transformer student)."""
    from .package import package_student

    done = package_student(run_dir, output_dir, name, version, model=model, test=test, build=build)
    e = done["evokd"]
    said = ", ".join(f"{k} {e[k][next(iter(e[k]))]:.3f} ({e[k]['n']} docs)" for k in ("dev", "test") if k in e)
    typer.echo(f"✔ {done['wheel'] or done['dir']} ({said})")


def _add_server_commands() -> None:
    """`python -m spacy_evokd server install|assemble|verify|start|stop|status`: the local
    llama.cpp teacher (local_server/cli.py; also runnable as `python -m spacy_evokd.local_server`)."""
    from .local_server.cli import app as server_app

    app.add_typer(server_app, name="server", help="the real local LLM teacher: llama.cpp's llama-server with a GGUF")


_add_server_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
