"""All benchmarks, one after the other; each prints its table and writes bench/results/<name>.json.

    bin/bench [--quick] [--data-dir ../shared/datasets] [--only transport,tokens,warm,cost,targeting]
    bin/bench --only targeting [--targeting-sets emotion,conll04] [--targeting-seeds 0,1,2] [--targeting-shots 1] [--targeting-rounds 6]
    bin/bench --only real [--quick] [--real-seeds 0,1]     (opt-in: the real local LLM teacher)
    bin/bench --only students [--quick] [--students-minutes 80]   (student architectures, few-shot to full)

The timing-sensitive ones (transport, warm start, student cost) run first and alone; the
targeting benchmark (many loop runs, two at a time) runs last. At full scale the suite takes many
hours on 2 cores (the student configs and targeting dominate; their flags cut them down);
what --quick scales down is printed.
Results of finished loop runs are kept in bench/results/runs/: a rerun reuses them.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import bench_data  # noqa: E402
import runs  # noqa: E402

ALL = ("transport", "tokens", "warm", "cost", "students", "targeting")
OPT_IN = ("real",)  # hours on 2 cores, needs the llama.cpp server and GGUF (`spacy project run llm-install`...)


def _list_or(arg: str, default: list, kind=int) -> list:
    """A comma-separated flag as a list (of ints unless kind says otherwise), or the default when empty."""
    return [kind(x) for x in arg.split(",") if x] or default


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="about 10 minutes: fewer data sets, seeds, rounds, texts")
    p.add_argument("--data-dir", type=Path, default=bench_data.default_dir(), help="default: ../shared/datasets")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results")
    p.add_argument("--real-seeds", default="0,1", help="seeds of the real-teacher benchmark")
    p.add_argument(
        "--real-sets",
        default="demo_textcat,demo_ner,emotion,conll04",
        help="data sets of the real-teacher benchmark, in order (demo_textcat, demo_ner: ours; others from --data-dir)",
    )
    p.add_argument(
        "--real-arms", default="evokd,guided_pool,plain,llm_pool,simulated", help="arms of the real-teacher benchmark"
    )
    p.add_argument(
        "--students-sets",
        default="",
        help="data sets of the student-config benchmark (default: "
        "demo_textcat,emotion,sst2,demo_ner,conll04,conll2003,demo_textcat_multilabel; --quick: the demo sets)",
    )
    p.add_argument("--students-seeds", default="0,1,2", help="k-shot seeds of the student-config benchmark")
    p.add_argument(
        "--students-candidates",
        default="",
        help="candidate configs to train (default: all, see bench/student_configs.py)",
    )
    p.add_argument(
        "--students-minutes", type=float, default=0, help="start no student training after this long (0 = no limit)"
    )
    p.add_argument("--students-full-only", action="store_true", help="the whole pool only (no few-shot settings)")
    p.add_argument(
        "--students-heavy-all",
        action="store_true",
        help="stock-accuracy students on the whole pool too (they always run on every few-shot seed)",
    )
    p.add_argument(
        "--targeting-sets",
        default="",
        help="data sets of the targeting benchmark (default: emotion,sst2,conll2003,conll04; --quick: emotion,conll04)",
    )
    p.add_argument(
        "--targeting-seeds", default="", help="k-shot seeds of the targeting benchmark (default 0,1,2; --quick 0)"
    )
    p.add_argument("--targeting-shots", default="", help="k of the k-shot seeds (default 1,5; --quick 1)")
    p.add_argument("--targeting-rounds", type=int, default=0, help="rounds per loop run (default 8; --quick 4)")
    p.add_argument(
        "--targeting-arms",
        default="",
        help="arms of the targeting benchmark (default: all; the full-shot "
        "table needs evokd): evokd,evokd_near,random,stratified,entropy,active,auto",
    )
    p.add_argument("--real-no-ablations", action="store_true", help="skip the four ablations (run on the first set)")
    p.add_argument("--real-tokens", type=int, default=6000, help="teacher tokens per round, every LLM arm")
    p.add_argument(
        "--real-port", type=int, default=8095, help="llama-server port (another one runs a second process beside)"
    )
    p.add_argument(
        "--real-threads", type=int, default=1, help="llama-server threads (2 only on an otherwise idle machine)"
    )
    a = p.parse_args()
    only = [x for x in a.only.split(",") if x]
    unknown = sorted(set(only) - set(ALL) - set(OPT_IN))
    if unknown:
        p.error(f"unknown benchmark {unknown[0]!r}; choose from {','.join(ALL + OPT_IN)}")
    if "real" in only:
        import real_teacher

        real_arms = real_teacher.ARMS + tuple(real_teacher.ABLATIONS)
        bad_arms = [x for x in a.real_arms.split(",") if x and x not in real_arms]
        if bad_arms:
            p.error(f"unknown arm {bad_arms[0]!r} in --real-arms; choose from {','.join(real_arms)}")
    if "students" in only:
        import student_configs

        known = [n for names in student_configs.SETS.values() for n in names]
        bad_sets = [x for x in a.students_sets.split(",") if x and x not in known]
        if bad_sets:
            p.error(f"unknown data set {bad_sets[0]!r} in --students-sets; choose from {','.join(known)}")
        names = sorted({c for cands in student_configs.CANDIDATES.values() for c in cands})
        bad_cands = [x for x in a.students_candidates.split(",") if x and x not in names]
        if bad_cands:
            p.error(f"unknown candidate {bad_cands[0]!r} in --students-candidates; choose from {','.join(names)}")
    bad_targets = [x for x in a.targeting_sets.split(",") if x and x not in bench_data.TASKS]
    if "targeting" in only and bad_targets:
        p.error(f"unknown data set {bad_targets[0]!r} in --targeting-sets; choose from {','.join(bench_data.TASKS)}")
    needs_data = {"warm", "cost", "targeting"} & set(only)
    if (
        "students" in only
        and (a.students_sets or not a.quick)
        and any(not x.startswith("demo_") for x in (a.students_sets or "emotion").split(",") if x)
    ):
        needs_data.add("students")
    if "real" in only and any(not x.startswith("demo_") for x in a.real_sets.split(",") if x):
        needs_data.add("real")
    if needs_data and a.data_dir is None:
        p.error(
            f"{', '.join(sorted(needs_data))} need the real data sets: pass --data-dir (../shared/datasets not found)"
        )
    if needs_data and not Path(a.data_dir).is_dir():
        p.error(f"{', '.join(sorted(needs_data))} need the real data sets: --data-dir {a.data_dir} is not a directory")
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    q = a.quick
    if q:
        print(
            "--quick: transport 32 prompts (not 128); token efficiency 2 rounds (not 3); warm start on emotion only, "
            "3 rounds (not emotion+conll04, 6); student cost on 500 texts (not 2,000); targeting on emotion and "
            "conll04 only, 1-shot, 1 seed, 4 rounds, pool 1,000, dev/test 300, full-shot 200 steps "
            "(not 4 data sets, 1- and 5-shot, 3 seeds, 8 rounds, pool 2,000, dev/test 500, 1,000 steps); "
            "student configs on the demo sets only, 1-shot, 1 seed (not 2 real sets per task too, 1- and 5-shot, 3 seeds)\n"
        )
    t0 = time.time()
    if "transport" in only:
        import transport

        transport.main(32 if q else 128, 0.2, out / "transport.json")
        print()
    if "tokens" in only:
        import token_efficiency

        for task in ("textcat", "ner"):
            token_efficiency.main(task, 2 if q else 3, out / f"tokens_{task}.json")
            print()
    sizes = {"pool": 1000, "dev": 300, "test": 300} if q else {"pool": 2000, "dev": 500, "test": 500}
    if "warm" in only:
        import warm_start

        warm_start.main(
            a.data_dir,
            out,
            ["emotion"] if q else ["emotion", "conll04"],
            3 if q else 6,
            400,
            [100] if q else [100, 200],
            sizes,
        )
        print()
    if "cost" in only:
        import student_cost

        student_cost.main(a.data_dir, out, 500 if q else 2000, sizes)
        print()
    if "students" in only:
        import student_configs

        student_configs.main(
            a.data_dir,
            out,
            quick=q,
            shots=() if a.students_full_only else (1, 5),
            seeds=[int(x) for x in a.students_seeds.split(",") if x],
            minutes=a.students_minutes,
            sets=[x for x in a.students_sets.split(",") if x] or None,
            candidates=[x for x in a.students_candidates.split(",") if x] or None,
            heavy_all=a.students_heavy_all,
            command="bin/bench " + " ".join(sys.argv[1:]),
        )
        print()
    if "targeting" in only:
        import targeting

        rounds = a.targeting_rounds or (4 if q else 8)
        scale = runs.Scale(rounds=rounds, analyses_per_round=2, n_hard=4, n_easy=4, max_steps=200, warm_start_steps=100)
        names = _list_or(
            a.targeting_sets, ["emotion", "conll04"] if q else ["emotion", "sst2", "conll2003", "conll04"], str
        )
        shots = _list_or(a.targeting_shots, [1] if q else [1, 5])
        seeds = _list_or(a.targeting_seeds, [0] if q else [0, 1, 2])
        targeting.main(
            a.data_dir,
            out,
            names,
            shots,
            seeds,
            scale,
            sizes,
            200 if q else 1000,
            arms=[x for x in a.targeting_arms.split(",") if x],
        )
    if "real" in only:
        import real_teacher

        real_teacher.main(
            a.data_dir,
            out,
            real_teacher.Settings.make(
                quick=q,
                seeds=[int(x) for x in a.real_seeds.split(",") if x],
                real_sets=[x for x in a.real_sets.split(",") if x],
                tokens_per_round=a.real_tokens,
                threads=a.real_threads,
                port=a.real_port,
                ablations=not a.real_no_ablations,
                arms=[x for x in a.real_arms.split(",") if x],
            ),
        )
    print(f"\nbenchmarks done in {(time.time() - t0) / 60:.1f} min; results in {out}")


if __name__ == "__main__":
    from spacy_evokd.data import DataError

    try:
        main()
    except (FileNotFoundError, DataError) as e:  # a missing or malformed data set file: one line
        sys.exit(f"✘ {e}")
