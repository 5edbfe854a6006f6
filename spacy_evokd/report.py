"""Per-run report: OUTPUT_DIR/report/report.md + PNG plots, from the committed round records.

Reads only rounds/round_NNN.json, so it works on a finished, a stopped or a running run.
"""
from pathlib import Path
from typing import Dict, List

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from .run_files import read_round_record  # noqa: E402


def load_records(run_dir: Path) -> List[Dict]:
    """Committed round records in order; a damaged one is a RunDirError naming the file."""
    paths = sorted((Path(run_dir) / "rounds").glob("round_*.json"))
    if not paths:
        raise FileNotFoundError(f"{run_dir}: no committed rounds (rounds/round_NNN.json)")
    return [read_round_record(p) for p in paths]


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plots(recs: List[Dict], out: Path, metric: str) -> Dict[str, str]:
    rounds = [r["round"] for r in recs]
    dev = [r["dev"]["score"] for r in recs]
    # cost axis: teacher tokens; a simulated teacher uses none, so its runs are plotted per sample
    key = "total_tokens" if sum(r["usage"]["total_tokens"] for r in recs) else None
    spent, total = [], 0
    for r in recs:
        total += r["usage"][key] if key else r["accepted"]
        spent.append(total)
    unit = "teacher tokens" if key else "generated samples"
    plots = {}

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    ax[0].plot(rounds, dev, marker="o")
    ax[0].set(xlabel="round", ylabel=f"dev {metric}", title="Dev score per round")
    ax[1].plot(spent, dev, marker="o")
    ax[1].set(xlabel=f"cumulative {unit}", ylabel=f"dev {metric}", title=f"Dev score per {unit}")
    plots["score"] = _save(fig, out / "dev_score.png")

    labels = sorted(recs[0]["dev"]["per_label"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label in labels:
        ax.plot(rounds, [r["dev"]["per_label"].get(label, {}).get("f", 0.0) for r in recs], marker=".", label=label)
    ax.set(xlabel="round", ylabel="dev F1", title="Per-label F1 over rounds")
    ax.legend(fontsize="small")
    plots["per_label"] = _save(fig, out / "per_label_f1.png")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label in labels:
        cum, acc = [], 0
        for r in recs:
            acc += r["accepted_per_label"].get(label, 0)
            cum.append(acc)
        ax.plot(rounds, cum, marker=".", label=label)
    ax.set(xlabel="round", ylabel="accepted samples (cumulative)", title="Generated samples per label")
    ax.legend(fontsize="small")
    plots["per_label_samples"] = _save(fig, out / "samples_per_label.png")

    reasons = sorted({k for r in recs for k in r["rejected"]})
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bottom = [0] * len(recs)
    ax.bar(rounds, [r["accepted"] for r in recs], label="accepted", color="tab:green")
    bottom = [r["accepted"] for r in recs]
    for reason in reasons:
        vals = [r["rejected"].get(reason, 0) for r in recs]
        ax.bar(rounds, vals, bottom=bottom, label=f"rejected: {reason}")
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set(xlabel="round", ylabel="samples", title="Accepted and rejected samples")
    ax.legend(fontsize="x-small")
    plots["rejections"] = _save(fig, out / "rejections.png")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    prompt = [r["usage"]["prompt_tokens"] for r in recs]
    ax.bar(rounds, prompt, label="prompt tokens", color="tab:blue")
    ax.bar(rounds, [r["usage"]["completion_tokens"] for r in recs], bottom=prompt, label="completion tokens", color="tab:orange")
    ax.set(xlabel="round", ylabel="teacher tokens", title="Teacher tokens and cost" + ("" if key else " (simulated: none)"))
    cost = ax.twinx()
    cum, total = [], 0.0
    for r in recs:
        total += r["usage"]["cost"]
        cum.append(total)
    cost.plot(rounds, cum, color="black", marker=".", label="cumulative cost")
    cost.set_ylabel("cumulative cost (USD)")
    ax.legend(fontsize="small", loc="upper left")
    plots["tokens"] = _save(fig, out / "tokens_cost.png")
    return plots


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    recs = load_records(run_dir)
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    task = "ner" if "ents_f" in recs[0]["dev"] else "textcat"
    metric = "macro-F1" if task == "textcat" else "entity F1"
    plots = _plots(recs, out, metric)
    best = max(recs, key=lambda r: r["dev"]["score"])
    simulated = any(r["simulated"] for r in recs)
    usage = {k: sum(r["usage"][k] for r in recs) for k in ("requests", "prompt_tokens", "completion_tokens", "cost")}
    estimated = any(r["usage"].get("estimated") for r in recs)
    lines = [f"# spacy-evokd run: {run_dir.name}", ""]
    if simulated:
        lines += ["> **Simulated teacher.** No LLM was asked: the teacher drew real labelled examples from a pool,",
                  "> aimed at the student's weak labels. Scores show what targeting buys, not what an LLM would write.", ""]
    lines += [
        f"- task: **{task}**, teacher: **{recs[-1]['teacher']}**",
        f"- rounds committed: {len(recs) - 1} (plus the seed round 0); seed docs: {recs[0]['train_size']}",
        f"- best dev {metric}: **{best['dev']['score']:.3f}** in round {best['round']} "
        f"(seed-only student: {recs[0]['dev']['score']:.3f})",
        f"- accepted samples: {sum(r['accepted'] for r in recs)}, rejected: {sum(sum(r['rejected'].values()) for r in recs)}",
        f"- teacher: {usage['requests']} requests, {usage['prompt_tokens']:,} prompt + {usage['completion_tokens']:,} "
        f"completion tokens{' (estimated)' if estimated else ''}, cost ${usage['cost']:.4f}",
    ]
    stopped = [r["stopped_by"] for r in recs if r.get("stopped_by")]
    if stopped:
        lines.append(f"- stopped by: {stopped[-1]}")
    lines += ["", "| round | accepted | rejected | tokens | cost | batch score (before training) | dev |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in recs:
        batch = f"{r['batch_scores']['score']:.3f}" if r.get("batch_scores") else "–"
        lines.append(f"| {r['round']} | {r['accepted']} | {sum(r['rejected'].values())} | {r['usage']['total_tokens']:,} "
                     f"| ${r['usage']['cost']:.4f} | {batch} | {r['dev']['score']:.3f} |")
    lines += ["", f"![dev score]({plots['score']})", "", f"![per-label F1]({plots['per_label']})", "",
              f"![samples per label]({plots['per_label_samples']})", "", f"![rejections]({plots['rejections']})", "",
              f"![tokens and cost]({plots['tokens']})", ""]
    reasons = {}
    for r in recs:
        for k, v in r["rejected"].items():
            reasons[k] = reasons.get(k, 0) + v
    if reasons:
        lines += ["## Rejections by reason", ""] + [f"- {k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])] + [""]
    lines += ["## Teacher analyses", ""]
    for r in recs[1:]:
        for i, a in enumerate(r["analyses"], 1):
            lines.append(f"**Round {r['round']}, analysis {i}.** {a.strip()}")
            lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf8")
    return path
