"""Print the markdown tables of benchmark record files (the JSON that `--output` writes), one table per benchmark.

python benchmarks/summarize.py benchmarks/results/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmark_utils import load_benchmark_script

TABLE_SCRIPTS = {"inference": "bench_inference", "training": "bench_training"}


def summarize(paths: list[Path]) -> str:
    """One markdown section per benchmark kind, with the machine of the first file of that kind."""
    records, machines = defaultdict(list), {}
    for path in paths:
        document = json.loads(path.read_text())
        kind = document["benchmark"]
        records[kind] += document["records"]
        machines.setdefault(kind, document.get("machine"))
    sections = []
    for kind, kind_records in records.items():
        table = load_benchmark_script(TABLE_SCRIPTS[kind]).table(kind_records)
        sections.append(f"### {kind}\n\nmachine: {machines[kind]}\n\n{table}")
    return "\n\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="record files written with --output")
    args = parser.parse_args(argv)
    existing = [path for path in args.paths if path.is_file()]
    for missing in sorted(set(args.paths) - set(existing)):
        print(f"(no results: {missing})")
    if existing:
        print(summarize(existing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
