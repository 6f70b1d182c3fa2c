"""Run the benchmark scripts beside this file: `python benchmarks/run_benchmarks.py inference|training|metric|all`."""

import argparse
import inspect
import sys
from types import ModuleType
from unittest import mock

SCRIPTS = {"inference": "bench_inference", "training": "bench_training", "metric": "bench_metric"}
# What --quick becomes for each script: the metric script (its own command line) has no --quick, one run is quick.
QUICK_OPTIONS = {"inference": ["--quick"], "training": ["--quick"], "metric": ["--repeats", "1"]}
# Scripts that write their records as JSON with --output.
WRITES_OUTPUT = ("inference", "training")


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run_benchmarks.py",
        description=(
            "Run the benchmarks of this folder. Options after the benchmark name go to its script (see "
            "`python benchmarks/bench_inference.py --help`); `all` runs the three with only --quick and --output "
            "passed on (as OUTPUT_<name>.json)."
        ),
    )
    parser.add_argument("which", choices=[*SCRIPTS, "all"], help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="tiny configurations, one run each (seconds)")
    parser.add_argument("--output", help="write the records as JSON here (inference and training)")
    parser.add_argument("options", nargs=argparse.REMAINDER, help="options for the benchmark script")
    return parser


def split_own_options(args: argparse.Namespace) -> argparse.Namespace:
    """Take --quick and --output out of the options for the script (they may come after the benchmark name)."""
    own = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    own.add_argument("--quick", action="store_true")
    own.add_argument("--output")
    found, rest = own.parse_known_args(args.options)
    return argparse.Namespace(
        which=args.which, quick=args.quick or found.quick, output=found.output or args.output, options=rest
    )


def script_arguments(args: argparse.Namespace, name: str) -> list[str]:
    """The command line one benchmark script receives."""
    argv = list(QUICK_OPTIONS[name]) if args.quick else []
    if args.output and name in WRITES_OUTPUT:
        argv += [
            "--output",
            args.output if args.which != "all" else f"{args.output.removesuffix('.json')}_{name}.json",
        ]
    return argv + (args.options if args.which != "all" else [])


def call_main(script: ModuleType, argv: list[str]) -> int:
    """Call a script's `main`, with `argv` as its argument or, for a `main()` that reads `sys.argv`, as that."""
    if inspect.signature(script.main).parameters:
        return script.main(argv) or 0
    with mock.patch.object(sys, "argv", [script.__file__, *argv]):
        return script.main() or 0


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmark script(s); returns the first non-zero exit code, else 0."""
    from benchmark_utils import load_benchmark_script  # imports torch: only when a benchmark runs

    args = split_own_options(build_parser().parse_args(argv))
    if args.which == "all" and args.options:
        raise SystemExit(f"`benchmark all` takes only --quick and --output; got {' '.join(args.options)}")
    if args.output and args.which not in (*WRITES_OUTPUT, "all"):
        raise SystemExit(f"The {args.which} benchmark prints its results and does not take --output")
    exit_code = 0
    for name in list(SCRIPTS) if args.which == "all" else [args.which]:
        print(f"## {name}", flush=True)
        exit_code = exit_code or call_main(load_benchmark_script(SCRIPTS[name]), script_arguments(args, name))
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
