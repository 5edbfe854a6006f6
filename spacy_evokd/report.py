"""Per-run report: OUTPUT_DIR/report/report.md and report.html + PNG plots.

From the committed round records (rounds/round_NNN.json) and round DocBins, so it works on a
finished, a stopped or a running run; test scores from the kept round models when the run's
config names a test set. It never flatters: the change against the seed-only student is printed
for dev and test with a paired bootstrap interval, a fall is flagged, the generated samples shown
are drawn in the round's real right/wrong proportion, plots start at 0 and carry the seed-only
baseline, and counts are those after a review. Plots with nothing to show are left out with a note.

Everything the teacher wrote (analyses, texts, annotations) is untrusted: it is shown as text only,
in code spans and fenced blocks, so neither report.md (on any Markdown renderer) nor report.html
turns it into an image, a link or HTML.
"""

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .doc_meta import DocMeta  # noqa: E402
from .records import RoundRecord  # noqa: E402
from .run_dir import RunDir  # noqa: E402
from .tasks import get_task  # noqa: E402
from .ty import CountScored  # noqa: E402

BOOTSTRAP_SAMPLES = 400  # paired resamples of dev/test for the interval of the change vs the seed round
BOOTSTRAP_MAX_DOCS = 1000  # above this the interval is narrow anyway and would cost seconds
SAMPLE_ROWS = 3  # generated samples shown per round and intent


def _save(fig, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": the legends outside the axes are kept
    plt.close(fig)
    return path.name


def _integer_axes(ax, y: bool = False) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if y:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_outside(ax) -> None:
    """Right of the axes: a legend never covers a line."""
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


@dataclass
class GoldSet:
    """Dev or test: its size, each round's score (dev from the records, test from the kept round
    models) and the seed-only and best students' per-doc predictions for the bootstrap."""

    name: str
    n: int
    scores: Dict[int, float] = field(default_factory=dict)
    judged: Dict[int, list] = field(default_factory=dict)


def _score_plot(recs: List[RoundRecord], gold: Dict[str, GoldSet], best: int, metric: str, out: Path) -> str:
    """Dev (and test) per round, from 0, with the seed-only student's score as a dashed baseline
    and the best round (on dev: the student model-best is) marked."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for g, color in ((gold["dev"], "tab:blue"), (gold.get("test"), "tab:orange")):
        if g is None or not g.scores:
            continue
        rounds = sorted(g.scores)
        ax.plot(rounds, [g.scores[r] for r in rounds], marker="o", color=color, label=f"{g.name} ({g.n} docs)")
        if 0 in g.scores:
            ax.axhline(g.scores[0], color=color, linestyle="--", linewidth=1, label=f"{g.name}: seed-only student")
        if best in g.scores:
            ax.plot([best], [g.scores[best]], marker="*", markersize=16, color=color, linestyle="none")
    ax.axvline(best, color="grey", linestyle=":", linewidth=1, label=f"best round on dev ({best})")
    ax.set(xlabel="round", ylabel=metric, title=f"{metric} per round", ylim=(0, 1.02))
    _integer_axes(ax)
    _legend_outside(ax)
    return _save(fig, out / "dev_score.png")


def _cumulative(recs: List[RoundRecord], value) -> List[float]:
    out, total = [], 0
    for r in recs:
        total += value(r)
        out.append(total)
    return out


def _plots(
    recs: List[RoundRecord], out: Path, metric: str, task, gold: Dict[str, GoldSet], best: int, accepted: Dict[int, int]
) -> Tuple[Dict[str, str], Dict[str, str]]:
    """The plots that have something to show (name -> file) and, for the others, why not."""
    rounds = [r.round for r in recs]
    plots, notes = {"score": _score_plot(recs, gold, best, metric, out)}, {}

    # dev per unit spent: teacher tokens, or (a simulated teacher spends none) accepted samples;
    # left out when it would redraw the per-round plot (every round spends the same)
    tokens = sum(r.usage["total_tokens"] for r in recs) > 0
    spend = (lambda r: r.usage["total_tokens"]) if tokens else (lambda r: accepted.get(r.round, 0))
    unit = "teacher tokens" if tokens else "accepted samples"
    steps = {spend(r) for r in recs[1:]}
    if len(recs) > 2 and len(steps) > 1:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(_cumulative(recs, spend), [r.dev["score"] for r in recs], marker="o")
        ax.set(xlabel=f"cumulative {unit}", ylabel=f"dev {metric}", title=f"Dev score per {unit}", ylim=(0, 1.02))
        _integer_axes(ax)
        plots["spend"] = _save(fig, out / "dev_per_spend.png")
    else:
        notes["spend"] = (
            f"Dev score per {unit} is left out: every round "
            f"{'spent the same' if len(recs) > 2 else 'is one point'}, so it would repeat the per-round plot."
        )

    labels = sorted(recs[0].dev["per_label"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for label in labels:
        ax.plot(rounds, [r.dev["per_label"].get(label, {}).get("f", 0.0) for r in recs], marker=".", label=label)
    ax.set(xlabel="round", ylabel="dev F1", title="Per-label F1 over rounds", ylim=(0, 1.02))
    _integer_axes(ax)
    _legend_outside(ax)
    plots["per_label"] = _save(fig, out / "per_label_f1.png")

    # what carries a label: a sample (textcat) or an entity mention (ner), per the task
    unit = task.label_unit
    per_label_unit = (
        "accepted samples"
        if unit == "example"
        else f"accepted {unit[:-1] + 'ies' if unit.endswith('y') else unit + 's'}"
    )
    if any(r.accepted_per_label for r in recs):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for label in labels:
            ax.plot(rounds, _cumulative(recs, lambda r: r.accepted_per_label.get(label, 0)), marker=".", label=label)
        ax.set(
            xlabel="round", ylabel=f"{per_label_unit} (cumulative)", title=f"{per_label_unit.capitalize()} per label"
        )
        _integer_axes(ax, y=True)
        _legend_outside(ax)
        plots["per_label_samples"] = _save(fig, out / "samples_per_label.png")
    else:
        notes["per_label_samples"] = "No samples accepted yet: no per-label plot."

    reasons = sorted({k for r in recs for k, v in r.rejected.items() if v})
    if reasons:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.bar(rounds, [r.accepted for r in recs], label="accepted", color="tab:green")
        bottom = [r.accepted for r in recs]
        for reason in reasons:
            vals = [r.rejected.get(reason, 0) for r in recs]
            ax.bar(rounds, vals, bottom=bottom, label=f"rejected: {reason}")
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set(xlabel="round", ylabel="samples", title="Accepted and rejected samples")
        _integer_axes(ax, y=True)
        _legend_outside(ax)
        plots["rejections"] = _save(fig, out / "rejections.png")
    else:
        notes["rejections"] = "Nothing was rejected: no rejections plot."

    if tokens:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        prompt = [r.usage["prompt_tokens"] for r in recs]
        ax.bar(rounds, prompt, label="prompt tokens", color="tab:blue")
        ax.bar(
            rounds,
            [r.usage["completion_tokens"] for r in recs],
            bottom=prompt,
            label="completion tokens",
            color="tab:orange",
        )
        ax.set(xlabel="round", ylabel="teacher tokens", title="Teacher tokens and cost")
        _integer_axes(ax, y=True)
        cost = ax.twinx()
        cost.plot(
            rounds, _cumulative(recs, lambda r: r.usage["cost"]), color="black", marker=".", label="cumulative cost"
        )
        cost.set_ylabel("cumulative cost (USD)")
        handles = ax.get_legend_handles_labels()[0] + cost.get_legend_handles_labels()[0]
        ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.15, 1.0), borderaxespad=0.0)
        plots["tokens"] = _save(fig, out / "tokens_cost.png")
    else:
        notes["tokens"] = "No teacher tokens were spent (simulated teacher): no tokens and cost plot."
    return plots, notes


# [evokd] analysis, in the report's words
AIMED_BY = {
    "llm": 'the teacher\'s weakness analysis (`analysis = "llm"`)',
    "student": 'the student\'s own brief, no analysis request (`analysis = "student"`)',
    "none": 'nothing: plain generation, label by label (`analysis = "none"`)',
}


def _run_config(run: RunDir) -> Optional[Dict]:
    from thinc.api import Config

    try:
        config = Config().from_disk(run.config_path)
        return {
            "dev": config["paths"].get("dev"),
            "test": config["paths"].get("test"),
            "labels": list(config["evokd"]["labels"]),
            "analysis": config["evokd"].get("analysis", "llm"),
        }
    except (OSError, KeyError, ValueError):  # a config of another shape: no test column, no intervals
        return None


def _gold_sets(run: RunDir, recs: List[RoundRecord], task, best: int) -> Dict[str, GoldSet]:
    """Dev: scores from the records; test (when the config names one): every kept round model
    scored. Both: the seed-only and the best student's predictions, for the bootstrap."""
    from .data import read_docbin
    from .student import evaluate, load

    gold = {"dev": GoldSet("dev", recs[0].dev.get("n", 0), {r.round: r.dev["score"] for r in recs})}
    config = _run_config(run)
    if config is None:
        return gold
    for name in ("dev", "test"):
        path = config.get(name)
        if not path or not Path(path).exists():
            continue
        docs = read_docbin(Path(path))
        g = gold.setdefault(name, GoldSet(name, len(docs)))
        g.n = len(docs)
        rounds = [r.round for r in recs] if name == "test" else sorted({0, best})
        for n in rounds:
            model = run.round_model(n)
            if model is None:
                continue
            scores, judged = evaluate(load(model), docs, task, config["labels"])
            if name == "test":
                g.scores[n] = scores["score"]
            if n in (0, best) and len(docs) <= BOOTSTRAP_MAX_DOCS:
                g.judged[n] = judged
    return gold


def _interval(task, labels: List[str], before: list, after: list) -> Tuple[float, float]:
    """95% paired bootstrap interval of score(after) - score(before) over the same resampled docs
    (a task whose score is one of summed counts, ty.CountScored, sums each resample's rows)."""
    rng = random.Random(0)
    n, diffs = len(before), []
    if isinstance(task, CountScored) and n:
        rows_after, rows_before = task.score_counts(after, labels, "en"), task.score_counts(before, labels, "en")

        def score_of(rows, idx):
            return task.score_from_counts([sum(col) for col in zip(*(rows[i] for i in idx))])
    else:
        rows_after, rows_before = after, before

        def score_of(judged, idx):
            return task.score([judged[i] for i in idx], labels)["score"]

    for _ in range(BOOTSTRAP_SAMPLES):
        idx = [rng.randrange(n) for _ in range(n)]
        diffs.append(score_of(rows_after, idx) - score_of(rows_before, idx))
    diffs.sort()
    return diffs[int(0.025 * BOOTSTRAP_SAMPLES)], diffs[int(0.975 * BOOTSTRAP_SAMPLES) - 1]


def _change_lines(
    gold: Dict[str, GoldSet], best: int, task, labels: Optional[List[str]]
) -> Tuple[List[str], List[str]]:
    """The change of dev and test from the seed-only student (round 0) to the best one, and the
    warnings: a fall, or an interval that includes no change."""
    parts, warnings = [], []
    for g in (gold["dev"], gold.get("test")):
        if g is None or 0 not in g.scores or best not in g.scores:
            continue
        before, after = g.scores[0], g.scores[best]
        delta = after - before
        text = f"{g.name} {before:.3f} → {after:.3f} ({delta:+.3f}"
        if labels and 0 in g.judged and best in g.judged and best != 0:
            lo, hi = _interval(task, labels, g.judged[0], g.judged[best])
            text += f"; 95% bootstrap interval {lo:+.3f} to {hi:+.3f}"
            if lo <= 0.0 <= hi:
                warnings.append(
                    f"On {g.name} the 95% interval of the change ({lo:+.3f} to {hi:+.3f}) includes 0: "
                    f"on these {g.n} docs it is not distinguishable from noise."
                )
        text += f"; {g.n} docs)"
        if delta < 0:
            text += " **fell**"
            warnings.append(
                f"**{g.name.capitalize()} fell** against the seed-only student: {before:.3f} → {after:.3f} "
                f"({delta:+.3f})."
            )
        parts.append(text)
    return parts, warnings


def _code(text: str, limit: int = 110) -> str:
    """Untrusted text as a one-line code span: no image, link, autolink or HTML on any Markdown
    renderer (GitHub's included), no table break (a pipe is escaped, which GFM and markdown-it
    undo inside table cells)."""
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{ticks}{pad}{text.replace('|', chr(92) + '|')}{pad}{ticks}"


def _block(text: str) -> List[str]:
    """Untrusted text as a fenced block, longer fence than any backtick run in it (it can't close early)."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    return [fence + "text", text.strip(), fence]


def _show(task, sample) -> str:
    """An annotation as a reader reads it: the values of the task's answer object."""
    parts = []
    for value in task.answer_of(sample).values():
        items = value if isinstance(value, list) else [value]
        parts += [f"{i['text']} ({i['label']})" if isinstance(i, dict) else str(i) for i in items]
    return ", ".join(parts) or "–"


def _share(right: int, total: int) -> str:
    return f"{right} of {total} ({100 * right / total:.0f}%)" if total else "0 of 0"


def _draw(rows: list, rng: random.Random, k: int) -> list:
    """k rows of (right?, judged), right and wrong in the proportion they have among ``rows``."""
    right = [x for x in rows if x[0]]
    wrong = [x for x in rows if not x[0]]
    k = min(k, len(rows))
    n_right = min(len(right), max(k - len(wrong), round(k * len(right) / len(rows)))) if rows else 0
    return rng.sample(right, n_right) + rng.sample(wrong, k - n_right)


def _examples(run: RunDir, recs: List[RoundRecord], task, review: "Review") -> List[str]:
    """Per round, the share of the round's accepted samples that the student of the round before
    got right (the batch feedback the next round sees), and per intent a few samples drawn in that
    intent's real right/wrong proportion. Samples a review removed are left out; corrected ones
    say so."""
    lines = []
    for r in recs[1:]:
        kept = {d.text: DocMeta.of(d) for d in run.docs(r.round)}
        by_intent: Dict[Optional[str], list] = {}
        for j in r.judged(task):
            if j.gold.text in review.removed:
                continue
            right = task.answer_key(j.gold) == task.answer_key(j.pred)
            by_intent.setdefault(kept[j.gold.text].intent if j.gold.text in kept else None, []).append((right, j))
        everything = [x for rows in by_intent.values() for x in rows]
        if not everything:
            continue
        rng = random.Random(r.round)
        shares = "; ".join(
            f"{intent or 'no intent'} {_share(sum(x[0] for x in rows), len(rows))}"
            for intent, rows in sorted(by_intent.items(), key=lambda kv: str(kv[0]))
        )
        lines += [
            f"**Round {r.round}**",
            "",
            f"The student before training on this batch got {_share(sum(x[0] for x in everything), len(everything))} "
            f"right ({shares}); the rows are drawn in these proportions, up to {SAMPLE_ROWS} per intent.",
            "",
            "| intent | text | teacher's annotation | student (before training) right? |",
            "|---|---|---|---|",
        ]
        for intent, rows in sorted(by_intent.items(), key=lambda kv: str(kv[0])):
            for right, j in _draw(rows, rng, SAMPLE_ROWS):
                verdict = "yes" if right else f"no: {_code(_show(task, j.pred), 60)}"
                note = (
                    " (corrected in review)" if j.gold.text in kept and kept[j.gold.text].review == "corrected" else ""
                )
                lines.append(
                    f"| {intent or '–'} | {_code(j.gold.text)} | {_code(_show(task, j.gold), 60)}{note} | {verdict} |"
                )
        lines.append("")
    return lines


def _unique(analyses: List[str]) -> List[Tuple[str, int]]:
    """Distinct analyses in order with how often each was given (a simulated teacher repeats)."""
    counts: Dict[str, int] = {}
    for a in analyses:
        counts[a.strip()] = counts.get(a.strip(), 0) + 1
    return list(counts.items())


@dataclass
class Review:
    """What `import-review` changed (review/log.jsonl, removed.jsonl) and what the rounds hold now."""

    imports: int = 0
    corrected: int = 0
    removed: set = field(default_factory=set)  # texts
    accepted_now: Dict[int, int] = field(default_factory=dict)  # round -> samples in its DocBin

    @classmethod
    def read(cls, run: RunDir, recs: List[RoundRecord]) -> "Review":
        entries = run.review_log()
        if not entries:
            return cls(accepted_now={r.round: r.accepted for r in recs})
        now = {r.round: len(run.docs(r.round)) for r in recs}
        return cls(
            len(entries), sum(e.get("totals", {}).get("corrected", 0) for e in entries), run.removed_texts(), now
        )

    def lines(self, run: RunDir, recs: List[RoundRecord], metric: str) -> List[str]:
        retrained = run.retrained_info_path
        if not self.imports and not retrained.exists():
            return []
        lines = ["## Review", ""]
        if self.imports:
            before = sum(r.accepted for r in recs)
            lines += [
                f"- {self.imports} review import(s): {self.corrected} samples corrected, {len(self.removed)} removed; "
                f"the rounds now hold {sum(self.accepted_now.values())} accepted samples ({before} before review). "
                "The counts in this report are those after review.",
                "- The scores above are of students trained **before** the review (model-best, the per-round "
                "models, and any metrics or packages made from them). Resuming `evolve` trains only new rounds; "
                f"to train a student on the reviewed data: `python -m spacy_evokd retrain {run.dir}`.",
            ]
        if retrained.exists():
            info = json.loads(retrained.read_text(encoding="utf8"))
            said = "; ".join(
                f"{name} {metric} {info[name]['score']:.3f} ({info[name]['n']} docs)"
                for name in ("dev", "test")
                if name in info
            )
            lines.append(
                f"- A student retrained on the reviewed data ({info['train_size']} docs, "
                f"`{run.retrained_model}`): {said}."
            )
        return lines + [""]


def _source_lines(recs) -> List[str]:
    """One line per round that gave active picks a share (source = "auto" | "active"):
    what each source was asked, accepted and spent, and why the split was what it was."""
    out = []
    for r in recs:
        split = r.sources.get("split")
        if not split or not split.get("active"):  # generation alone: nothing was split
            continue
        parts = [
            f"{k} {v.get('accepted', 0)}/{v.get('slots', 0)} accepted/asked, {v.get('tokens', 0):,} tokens"
            for k, v in r.sources.items()
            if isinstance(v, dict) and "slots" in v
        ]
        limits = "; ".join(r.sources[k] for k in ("active_share_used", "planned_stop") if r.sources.get(k))
        out.append(
            f"- round {r.round} sources: {', '.join(parts)} ({split.get('why', '')})"
            + (f"; {limits}" if limits else "")
        )
    return out


def write_report(run_dir: Path) -> Path:
    """OUTPUT_DIR/report/report.md and report.html (the same content) with the plots beside them."""
    run_dir = Path(run_dir)
    run = RunDir(run_dir)
    recs = run.load_records()  # a damaged one: a RunDirError naming the file
    out = run.report_dir
    out.mkdir(exist_ok=True)
    for old in out.glob("*.png"):  # a plot left out this time must not linger from an earlier report
        old.unlink()
    task = get_task(recs[0].task)  # the task of a record written before records named it: records.py
    metric = task.metric_name
    best = max(recs, key=lambda r: r.dev["score"])
    review = Review.read(run, recs)
    # what the seed-only student is compared with: the best round, or the last one when no round beat it
    target = best.round if best.round != 0 else recs[-1].round
    gold = _gold_sets(run, recs, task, target)
    test = gold["test"].scores if "test" in gold else {}
    plots, notes = _plots(recs, out, metric, task, gold, best.round, review.accepted_now)
    config = _run_config(run)
    change, warnings = _change_lines(gold, target, task, config["labels"] if config else None)
    if best.round == 0 and len(recs) > 1:
        warnings.insert(0, "**No round beat the seed-only student on dev**: model-best is the seed-only student.")
    simulated = any(r.simulated for r in recs)
    usage = {k: sum(r.usage[k] for r in recs) for k in ("requests", "prompt_tokens", "completion_tokens", "cost")}
    estimated = any(r.usage.get("estimated") for r in recs)
    accepted = sum(review.accepted_now.values())
    lines = [f"# spacy-evokd run: {run_dir.name}", ""]
    if simulated:
        lines += [
            "> **Simulated teacher.** No LLM was asked: the teacher drew real labelled examples from a pool,",
            (
                "> label by label (plain generation). Scores show what such samples buy, not what an LLM would write."
                if config and config["analysis"] == "none"
                else "> aimed at the student's weak labels. Scores show what targeting buys, not what an LLM would write."
            ),
            "",
        ]
    if warnings:
        lines += [f"> ⚠ {w}" for w in warnings] + [""]
    sizes = ", ".join(f"{g.name} {g.n} docs" for g in gold.values() if g.n)
    lines += [
        f"- task: **{task.name}**, teacher: **{recs[-1].teacher}**",
        f"- rounds committed: {len(recs) - 1} (plus the seed round 0); seed docs: {recs[0].train_size}"
        + (f"; {sizes}" if sizes else ""),
        f"- best dev {metric}: **{best.dev['score']:.3f}** in round {best.round} "
        f"(seed-only student: {recs[0].dev['score']:.3f})"
        + (
            f"; its test {metric}: **{test[best.round]:.3f}** (seed-only: {test.get(0, float('nan')):.3f})"
            if best.round in test
            else ""
        ),
        # the task's headline scores (e.g. multi-label: micro-F1 and exact-set accuracy besides macro-F1)
        "- its dev scores: " + ", ".join(f"{k} {best.dev[k]:.3f}" for k in task.main_score_keys if k in best.dev),
    ]
    if change:
        lines.append(
            f"- change from the seed-only student to round {target}{' (the last)' if target != best.round else ''}: "
            + "; ".join(change)
        )
    lines += [
        f"- accepted samples: {accepted}"
        + (" (after review)" if review.imports else "")
        + f", rejected: {sum(sum(r.rejected.values()) for r in recs)}",
        f"- teacher: {usage['requests']} requests, {usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} "
        f"completion tokens{' (estimated)' if estimated else ''}, cost ${usage['cost']:.4f}",
        f"- time: {sum(r.seconds.get('total', 0.0) for r in recs) / 60:.1f} min "
        f"(teacher {sum(r.seconds.get('teacher', 0.0) for r in recs) / 60:.1f}, training {sum(r.seconds.get('train', 0.0) for r in recs) / 60:.1f})",
    ]
    if config:
        lines.append(f"- generation aimed by: {AIMED_BY.get(config['analysis'], config['analysis'])}")
    if not test:
        lines.append("- test: no test set in the run's config (`paths.test`), or no round's model is kept")
    stopped = [r.stopped_by for r in recs if r.stopped_by]
    if stopped:
        lines.append(f"- stopped by: {stopped[-1]}")
    lines += [
        "",
        "| round | accepted | rejected | tokens | cost | teacher s | train s | batch score (before training) | dev | test |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in recs:
        batch = f"{r.batch_scores['score']:.3f}" if r.batch_scores else "–"
        lines.append(
            f"| {r.round} | {review.accepted_now.get(r.round, r.accepted)} | {sum(r.rejected.values())} | {r.usage['total_tokens']:,} "
            f"| ${r.usage['cost']:.4f} | {r.seconds.get('teacher', 0.0):.1f} | {r.seconds.get('train', 0.0):.1f} "
            f"| {batch} | {r.dev['score']:.3f} | {f'{test[r.round]:.3f}' if r.round in test else '–'} |"
        )
    lines += ["", *_source_lines(recs), ""]
    for name, title in (
        ("score", "scores per round"),
        ("spend", "dev per spend"),
        ("per_label", "per-label F1"),
        ("per_label_samples", "accepted per label"),
        ("rejections", "rejections"),
        ("tokens", "tokens and cost"),
    ):
        lines += [f"![{title}]({plots[name]})" if name in plots else f"*{notes[name]}*", ""]
    lines += review.lines(run, recs, metric)
    examples = _examples(run, recs, task, review)
    if examples:
        lines += ["## Generated samples (drawn per round and intent in the real right/wrong proportion)", ""] + examples
    reasons = {}
    for r in recs:
        for k, v in r.rejected.items():
            reasons[k] = reasons.get(k, 0) + v
    if reasons:
        lines += (
            ["## Rejections by reason", ""]
            + [f"- {k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])]
            + [""]
        )
    lines += ["## Teacher analyses", "", "The teacher's own words, shown as text.", ""]
    if not any(r.analyses for r in recs[1:]):
        lines += ["None were written.", ""]
    for r in recs[1:]:
        for i, (a, times) in enumerate(_unique(r.analyses), 1):
            lines += [f"### Round {r.round}, analysis {i}{f' (given {times} times)' if times > 1 else ''}", ""]
            lines += _block(a) + [""]
    path = out / "report.md"
    _write_summary(out, gold, target, len(recs) - 1, metric)
    markdown = "\n".join(lines)
    path.write_text(markdown, encoding="utf8")
    (out / "report.html").write_text(_html(markdown, run_dir.name, set(plots.values())), encoding="utf8")
    return path


def _write_summary(out: Path, gold: Dict[str, GoldSet], best: int, rounds: int, metric: str) -> None:
    """report/summary.json: the headline (seed-only -> best on dev and test; the last round when
    none beat the seed-only one) that `report` prints and bin/demo ends with."""
    parts = []
    for g in (gold["dev"], gold.get("test")):
        if g is not None and 0 in g.scores and best in g.scores:
            delta = g.scores[best] - g.scores[0]
            parts.append(
                f"{g.name} {g.scores[0]:.3f} → {g.scores[best]:.3f} ({delta:+.3f}{', FELL' if delta < 0 else ''}; {g.n} docs)"
            )
    headline = f"{metric}, seed-only → round {best} of {rounds}: " + ", ".join(parts)
    scores = {g.name: {"seed_only": g.scores.get(0), "best": g.scores.get(best), "n": g.n} for g in gold.values()}
    (out / "summary.json").write_text(
        json.dumps(
            {"headline": headline, "best_round": best, "rounds": rounds, "metric": metric, "scores": scores}, indent=2
        ),
        encoding="utf8",
    )


def _html(markdown: str, title: str, plots: set) -> str:
    """The Markdown report as one HTML page (markdown-it, CommonMark + tables, raw HTML escaped).
    Teacher text is in code spans and blocks already; as a second guard, the only images are the
    report's own plots and links are not rendered at all."""
    from html import escape

    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable(["link", "autolink"])
    default_image = md.renderer.rules["image"]

    def image(renderer, tokens, idx, options, env):
        src = tokens[idx].attrGet("src")
        if src in plots:
            return default_image(tokens, idx, options, env)
        return escape(tokens[idx].content or "")

    md.add_render_rule("image", image)
    body = md.render(markdown)
    style = (
        "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}"
        "pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"
        "blockquote{background:#fff4d6;margin:0;padding:.5em 1em}img{max-width:100%}"
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>spacy-evokd run: {escape(title)}</title>'
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )
