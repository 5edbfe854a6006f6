"""Run the benchmarks that exist so far, each printing its table and writing bench/results/*.json.

    bin/bench            # or: python bench/run.py [--quick]

--quick scales the work down (fewer prompts, rounds) and says so.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import token_efficiency  # noqa: E402
import transport  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    quick = p.parse_args().quick
    out = ROOT / "bench/results"
    if quick:
        print("--quick: transport with 32 prompts (not 128); token efficiency with 2 rounds (not 3)\n")
    transport.main(32 if quick else 128, 0.2, out / "transport.json")
    print()
    for task in ("textcat", "ner"):
        token_efficiency.main(task, 2 if quick else 3, out / f"tokens_{task}.json")
        print()
