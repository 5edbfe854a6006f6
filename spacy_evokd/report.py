"""Per-run report: OUTPUT_DIR/report/report.md and report.html + PNG plots.

From the committed round records (rounds/round_NNN.json) and round DocBins, so it works on a
finished, a stopped or a running run; test scores from the kept round models when the run's
config names a test set. Plots with nothing to show are left out with a note.
"""
from pathlib import Path
from typing import Dict, List, Tuple

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from .records import RoundRecord  # noqa: E402
from .tasks import get_task  # noqa: E402


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plots(recs: List[RoundRecord], out: Path, metric: str, task) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The plots that have something to show (name -> file) and, for the others, why not."""
    rounds = [r.round for r in recs]
    dev = [r.dev["score"] for r in recs]
    # cost axis: teacher tokens; a simulated teacher uses none, so its runs are plotted per sample
    key = "total_tokens" if sum(r.usage["total_tokens"] for r in recs) else None
    spent, total = [], 0
    for r in recs:
        total += r.usage[key] if key else r.accepted
        spent.append(total)
    unit = "teacher tokens" if key else "accepted samples"
    plots, notes = {}, {}

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(rounds, dev, marker="o")
    ax[0].set(xlabel="round", ylabel=f"dev {metric}", title="Dev score per round")
    ax[1].plot(spent, dev, marker="o")
    ax[1].set(xlabel=f"cumulative {unit}", ylabel=f"dev {metric}", title=f"Dev score per {unit}")
    plots["score"] = _save(fig, out / "dev_score.png")

    labels = sorted(recs[0].dev["per_label"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label in labels:
        ax.plot(rounds, [r.dev["per_label"].get(label, {}).get("f", 0.0) for r in recs], marker=".", label=label)
    ax.set(xlabel="round", ylabel="dev F1", title="Per-label F1 over rounds")
    ax.legend(fontsize="small")
    plots["per_label"] = _save(fig, out / "per_label_f1.png")

    # what carries a label: a sample (textcat) or an entity mention (ner), per the task
    unit = task.label_unit
    per_label_unit = "accepted samples" if unit == "example" else f"accepted {unit[:-1] + 'ies' if unit.endswith('y') else unit + 's'}"
    if any(r.accepted_per_label for r in recs):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        for label in labels:
            cum, acc = [], 0
            for r in recs:
                acc += r.accepted_per_label.get(label, 0)
                cum.append(acc)
            ax.plot(rounds, cum, marker=".", label=label)
        ax.set(xlabel="round", ylabel=f"{per_label_unit} (cumulative)", title=f"{per_label_unit.capitalize()} per label")
        ax.legend(fontsize="small")
        plots["per_label_samples"] = _save(fig, out / "samples_per_label.png")
    else:
        notes["per_label_samples"] = "No samples accepted yet: no per-label plot."

    reasons = sorted({k for r in recs for k in r.rejected})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bottom = [0] * len(recs)
    ax.bar(rounds, [r.accepted for r in recs], label="accepted", color="tab:green")
    bottom = [r.accepted for r in recs]
    for reason in reasons:
        vals = [r.rejected.get(reason, 0) for r in recs]
        ax.bar(rounds, vals, bottom=bottom, label=f"rejected: {reason}")
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(xlabel="round", ylabel="samples", title="Accepted and rejected samples")
    ax.legend(fontsize="x-small")
    plots["rejections"] = _save(fig, out / "rejections.png")

    if key:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        prompt = [r.usage["prompt_tokens"] for r in recs]
        ax.bar(rounds, prompt, label="prompt tokens", color="tab:blue")
        ax.bar(rounds, [r.usage["completion_tokens"] for r in recs], bottom=prompt, label="completion tokens", color="tab:orange")
        ax.set(xlabel="round", ylabel="teacher tokens", title="Teacher tokens and cost")
        cost = ax.twinx()
        cum, total = [], 0.0
        for r in recs:
            total += r.usage["cost"]
            cum.append(total)
        cost.plot(rounds, cum, color="black", marker=".", label="cumulative cost")
        cost.set_ylabel("cumulative cost (USD)")
        ax.legend(fontsize="small", loc="upper left")
        plots["tokens"] = _save(fig, out / "tokens_cost.png")
    else:
        notes["tokens"] = "No teacher tokens were spent (simulated teacher): no tokens and cost plot."
    return plots, notes


def _test_scores(run_dir: Path, recs: List[RoundRecord], task) -> Dict[int, float]:
    """Round -> test score of that round's student, for the rounds whose model is still on disk
    (``--keep-models best`` prunes the others) when the run's config names a test set."""
    from thinc.api import Config

    from .data import read_docbin
    from .student import evaluate, load

    try:
        config = Config().from_disk(run_dir / "config.cfg")
        test = config["paths"].get("test")
        labels = list(config["evokd"]["labels"])
    except (OSError, KeyError, ValueError):  # a config of another shape: no test column
        return {}
    if not test or not Path(test).exists():
        return {}
    gold = read_docbin(Path(test))
    scores = {}
    for r in recs:
        model = run_dir / "models" / f"round_{r.round:03d}" / "model-best"
        if (model / "meta.json").exists():
            scores[r.round] = evaluate(load(model), gold, task, labels)[0]["score"]
    return scores


def _cell(text: str, limit: int = 110) -> str:
    """A table cell: one line, at most ``limit`` characters, no Markdown table breaks."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show(task, sample) -> str:
    """An annotation as a reader reads it: the values of the task's answer object."""
    parts = []
    for value in task.answer_of(sample).values():
        items = value if isinstance(value, list) else [value]
        parts += [f"{i['text']} ({i['label']})" if isinstance(i, dict) else str(i) for i in items]
    return ", ".join(parts) or "–"


def _examples(run_dir: Path, recs: List[RoundRecord], task, per_intent: int = 3) -> List[str]:
    """Per round, a few accepted samples of each intent with the teacher's annotation and whether
    the student (of the round before) got them right: the batch feedback the next round sees."""
    from .data import read_docbin

    lines = []
    for r in recs[1:]:
        path = run_dir / "rounds" / f"round_{r.round:03d}.spacy"
        intents = {d.text: d.user_data.get("evokd", {}).get("intent") for d in read_docbin(path)} if path.exists() else {}
        shown = {"hard": 0, "easy": 0, None: 0}
        rows = []
        for j in r.judged():
            intent = intents.get(j.gold.text)
            if shown.get(intent, 0) >= per_intent:
                continue
            shown[intent] = shown.get(intent, 0) + 1
            right = "yes" if task.answer_key(j.gold) == task.answer_key(j.pred) else f"no: {_cell(_show(task, j.pred), 60)}"
            rows.append(f"| {intent or '–'} | {_cell(j.gold.text)} | {_cell(_show(task, j.gold), 60)} | {right} |")
        if rows:
            lines += [f"**Round {r.round}**", "", "| intent | text | teacher's annotation | student (before training) right? |",
                      "|---|---|---|---|", *rows, ""]  # fmt: skip
    return lines


def _unique(analyses: List[str]) -> List[Tuple[str, int]]:
    """Distinct analyses in order with how often each was given (a simulated teacher repeats)."""
    counts: Dict[str, int] = {}
    for a in analyses:
        counts[a.strip()] = counts.get(a.strip(), 0) + 1
    return list(counts.items())


def write_report(run_dir: Path) -> Path:
    """OUTPUT_DIR/report/report.md and report.html (the same content) with the plots beside them."""
    run_dir = Path(run_dir)
    recs = RoundRecord.load_all(run_dir)  # a damaged one: a RunDirError naming the file
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    task = get_task(recs[0].task)  # the task of a record written before records named it: records.py
    metric = task.metric_name
    plots, notes = _plots(recs, out, metric, task)
    test = _test_scores(run_dir, recs, task)
    best = max(recs, key=lambda r: r.dev["score"])
    simulated = any(r.simulated for r in recs)
    usage = {k: sum(r.usage[k] for r in recs) for k in ("requests", "prompt_tokens", "completion_tokens", "cost")}
    estimated = any(r.usage.get("estimated") for r in recs)
    lines = [f"# spacy-evokd run: {run_dir.name}", ""]
    if simulated:
        lines += ["> **Simulated teacher.** No LLM was asked: the teacher drew real labelled examples from a pool,",
                  "> aimed at the student's weak labels. Scores show what targeting buys, not what an LLM would write.", ""]
    lines += [
        f"- task: **{task.name}**, teacher: **{recs[-1].teacher}**",
        f"- rounds committed: {len(recs) - 1} (plus the seed round 0); seed docs: {recs[0].train_size}",
        f"- best dev {metric}: **{best.dev['score']:.3f}** in round {best.round} "
        f"(seed-only student: {recs[0].dev['score']:.3f})"
        + (f"; its test {metric}: **{test[best.round]:.3f}** (seed-only: {test.get(0, float('nan')):.3f})" if best.round in test else ""),
        # the task's headline scores (e.g. multi-label: micro-F1 and exact-set accuracy besides macro-F1)
        "- its dev scores: " + ", ".join(f"{k} {best.dev[k]:.3f}" for k in task.main_score_keys if k in best.dev),
        f"- accepted samples: {sum(r.accepted for r in recs)}, rejected: {sum(sum(r.rejected.values()) for r in recs)}",
        f"- teacher: {usage['requests']} requests, {usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} "
        f"completion tokens{' (estimated)' if estimated else ''}, cost ${usage['cost']:.4f}",
        f"- time: {sum(r.seconds.get('total', 0.0) for r in recs) / 60:.1f} min "
        f"(teacher {sum(r.seconds.get('teacher', 0.0) for r in recs) / 60:.1f}, training {sum(r.seconds.get('train', 0.0) for r in recs) / 60:.1f})",
    ]
    if not test:
        lines.append("- test: no test set in the run's config (`paths.test`), or no round's model is kept")
    stopped = [r.stopped_by for r in recs if r.stopped_by]
    if stopped:
        lines.append(f"- stopped by: {stopped[-1]}")
    lines += ["", "| round | accepted | rejected | tokens | cost | teacher s | train s | batch score (before training) | dev | test |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in recs:
        batch = f"{r.batch_scores['score']:.3f}" if r.batch_scores else "–"
        lines.append(f"| {r.round} | {r.accepted} | {sum(r.rejected.values())} | {r.usage['total_tokens']:,} "
                     f"| ${r.usage['cost']:.4f} | {r.seconds.get('teacher', 0.0):.1f} | {r.seconds.get('train', 0.0):.1f} "
                     f"| {batch} | {r.dev['score']:.3f} | {f'{test[r.round]:.3f}' if r.round in test else '–'} |")  # fmt: skip
    lines += ["", *[f"- round {r.round} sources: " + ", ".join(f"{k} {v.get('accepted', 0)}/{v.get('slots', 0)} accepted/asked, {v.get('tokens', 0):,} tokens" for k, v in r.sources.items() if isinstance(v, dict) and "slots" in v) + f" ({r.sources['split'].get('why', '')})" for r in recs if r.sources.get("split")], ""]  # fmt: skip
    for name, title in (("score", "dev score"), ("per_label", "per-label F1"), ("per_label_samples", "accepted per label"),
                        ("rejections", "rejections"), ("tokens", "tokens and cost")):  # fmt: skip
        lines += [f"![{title}]({plots[name]})" if name in plots else f"*{notes[name]}*", ""]
    examples = _examples(run_dir, recs, task)
    if examples:
        lines += ["## Generated samples (a few per round and intent)", ""] + examples
    reasons = {}
    for r in recs:
        for k, v in r.rejected.items():
            reasons[k] = reasons.get(k, 0) + v
    if reasons:
        lines += ["## Rejections by reason", ""] + [f"- {k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])] + [""]
    lines += ["## Teacher analyses", ""]
    for r in recs[1:]:
        for i, (a, times) in enumerate(_unique(r.analyses), 1):
            lines.append(f"**Round {r.round}, analysis {i}{f' (given {times} times)' if times > 1 else ''}.** {a}")
            lines.append("")
    path = out / "report.md"
    markdown = "\n".join(lines)
    path.write_text(markdown, encoding="utf8")
    (out / "report.html").write_text(_html(markdown, run_dir.name), encoding="utf8")
    return path


def _html(markdown: str, title: str) -> str:
    """The Markdown report as one HTML page (markdown-it, CommonMark + tables; raw HTML in the
    text is escaped, since analyses and samples come from the teacher)."""
    from html import escape

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    style = ("body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}"
             "blockquote{background:#fff4d6;margin:0;padding:.5em 1em}img{max-width:100%}")  # fmt: skip
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>spacy-evokd run: {escape(title)}</title>"
            f"<style>{style}</style></head><body>{body}</body></html>\n")
