"""Run a benchmark and print one JSON object of its figures.

    .venv/bin/python benchmarks/run.py NAME --json
    .venv/bin/python benchmarks/run.py all --json     (one JSON object per line)

Each benchmark is `benchmarks/<name>.py` with `run() -> dict`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NAMES = ("import", "engine", "qa", "dispatch", "enqueue", "sweep", "crash", "audience", "journeys", "memory",
         "reliability")


def run_one(name: str) -> dict[str, object]:
    module = importlib.import_module(f"benchmarks.{'roll_import' if name == 'import' else name}")
    started = time.perf_counter()
    figures = dict(module.run())
    figures.setdefault("benchmark", name)
    figures.setdefault("wall_s", round(time.perf_counter() - started, 3))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=(*NAMES, "all"))
    parser.add_argument("--json", action="store_true", help="print JSON (the default output too)")
    args = parser.parse_args(argv)
    for name in NAMES if args.name == "all" else (args.name,):
        print(json.dumps(run_one(name), ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
