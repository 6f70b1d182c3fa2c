"""Time and peak memory of the YouTube-VIS metric against the official `ytvoseval`, on JSON files on disk.

Each run is a fresh process that evaluates the case from its two files (`gt.json`, `results.json`) and reports
the evaluation's wall time (from the file paths to the 12 numbers, imports excluded), its peak resident set size
(the process's high-water mark, imports included) and the 12 numbers. Ours and the official code run
alternately, `--repeats` times each, so that both see the same machine load; the table gives medians and the
ratio of ours to the official one, and the script checks that the 12 numbers agree (to 1e-12).

The official code (youtubevos/cocoapi `PythonAPI`, with its own pycocotools C extension) needs its own Python:
`--official-python` runs it, `--official-api` is the `PythonAPI` folder. Its extension must be built against
numpy < 2 (numpy 2 dropped the C names it uses). The code itself is run unmodified; it was written for numpy <
1.18, so on a newer numpy two shims are applied first in its process: `np.float` is the builtin `float` again
(gone in numpy 1.24), and `np.linspace` takes its float sample counts as ints (an error since numpy 1.18).
Neither changes a number. Without `--official-python` only ours is measured.

    python benchmarks/make_metric_case.py /tmp/metric_case
    python benchmarks/bench_metric_official.py /tmp/metric_case --repeats 5 \\
        --official-python /path/to/venv/bin/python --official-api /path/to/cocoapi/PythonAPI

This file runs under the official Python too (as the worker), so it imports only the standard library at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
MARKER = "BENCH_METRIC_RESULT "  # the line a worker prints before its JSON answer
TOLERANCE = 1e-12


# ------------------------------------------------------------------------------------------------ workers


def run_ours(case: Path) -> list[float]:
    """The 12 numbers of this package's metric."""
    from modeling_m2f_video.evaluation.metric import evaluate_ytvis

    result = evaluate_ytvis(case / "gt.json", case / "results.json")
    return [result.stats[name] for name in STAT_NAMES]


def run_official(case: Path, api: Path) -> list[float]:
    """The 12 numbers of youtubevos/cocoapi's `ytvoseval`, run as its users run it (its printing silenced)."""
    import contextlib
    import io

    import numpy as np

    if not hasattr(np, "float"):
        np.float = float
    linspace = np.linspace
    np.linspace = lambda start, stop, num=50, *args, **kwargs: linspace(start, stop, int(num), *args, **kwargs)
    sys.path.insert(0, str(api))
    from pycocotools.ytvos import YTVOS
    from pycocotools.ytvoseval import YTVOSeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = YTVOS(str(case / "gt.json"))
        evaluation = YTVOSeval(gt, gt.loadRes(str(case / "results.json")), "segm")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(value) for value in evaluation.stats]


def worker(which: str, case: Path, api: Path | None) -> None:
    """Evaluate once in this process; print seconds, peak RSS and the numbers after `MARKER`."""
    import resource
    import time

    start = time.perf_counter()
    stats = run_ours(case) if which == "ours" else run_official(case, api)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux
    print(MARKER + json.dumps({"seconds": seconds, "peak_rss_bytes": peak, "stats": stats}), flush=True)


def measure(python: str, which: str, case: Path, api: Path | None) -> dict:
    """One fresh-process run of a worker."""
    command = [python, str(Path(__file__).resolve()), "--worker", which, str(case)]
    if api is not None:
        command += ["--official-api", str(api)]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    raise RuntimeError(f"{which} run failed (exit code {completed.returncode}):\n{completed.stderr[-4000:]}")


# --------------------------------------------------------------------------------------------------- main


def cpu_model() -> str:
    """The CPU's model name (Linux), else the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def summarize(runs: list[dict]) -> dict:
    """Median time and peak memory of one side's runs, and all its times."""
    return {
        "seconds": statistics.median(run["seconds"] for run in runs),
        "peak_rss_gb": statistics.median(run["peak_rss_bytes"] for run in runs) / 1e9,
        "all_seconds": [round(run["seconds"], 2) for run in runs],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", type=Path, help="folder with gt.json and results.json (make_metric_case.py)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--official-python", help="the Python that runs the official code")
    parser.add_argument("--official-api", type=Path, help="youtubevos/cocoapi's PythonAPI folder")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    parser.add_argument("--worker", choices=("ours", "official"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.case, args.official_api)
        return {}
    official = args.official_python is not None
    if official and args.official_api is None:
        parser.error("--official-python needs --official-api")

    load_before = os.getloadavg()
    ours, theirs = [], []
    for _ in range(args.repeats):  # alternately, so that both see the same load
        ours.append(measure(sys.executable, "ours", args.case, None))
        if official:
            theirs.append(measure(args.official_python, "official", args.case, args.official_api))
    report = {
        "case": str(args.case),
        "sizes_mb": {name: round((args.case / name).stat().st_size / 1e6, 1) for name in ("gt.json", "results.json")},
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs",
        "load_average": [round(x, 1) for x in (*load_before, *os.getloadavg())],
        "repeats": args.repeats,
        "ours": summarize(ours),
    }
    print(f"case {args.case}: {report['sizes_mb']} MB; {report['machine']}; repeats {args.repeats}")
    print(f"load average (1, 5, 15 min) before {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}")
    rows = [("ours", report["ours"])]
    if official:
        report["official"] = summarize(theirs)
        difference = max(abs(a - b) for run in ours + theirs for a, b in zip(run["stats"], theirs[0]["stats"]))
        report["max_stat_difference"] = difference
        report["time_ratio"] = report["ours"]["seconds"] / report["official"]["seconds"]
        report["memory_ratio"] = report["ours"]["peak_rss_gb"] / report["official"]["peak_rss_gb"]
        rows.append(("official", report["official"]))
    print("| metric | median time (s) | peak RSS (GB) | runs (s) |\n|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['seconds']:.2f} | {row['peak_rss_gb']:.3f} | {row['all_seconds']} |")
    if official:
        print(f"ours / official: time {report['time_ratio']:.2f}x, peak memory {report['memory_ratio']:.2f}x")
        agreement = "exactly" if difference == 0 else f"to {difference:.1e}"
        print(f"the 12 numbers agree {agreement} (all runs of both)")
        if difference > TOLERANCE:
            raise SystemExit(f"the 12 numbers differ by {difference:.3e} (more than {TOLERANCE})")
    else:
        print("official: not measured (give --official-python and --official-api)")
    if args.output:
        args.output.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
