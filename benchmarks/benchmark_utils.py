"""Shared helpers of the benchmark scripts beside this file: timing, peak memory, machine facts, records and tables.

The benchmarks ship with the source tree, not with the installed package. A script imports this module as
`benchmark_utils` (Python puts the script's folder on `sys.path`); [`load_benchmark_script`] imports a sibling
script by name, which is how `run_benchmarks.py` and the tests reach them. Quick runs use the package's tiny
random configuration, `Mask2FormerVideoConfig.tiny`.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

BENCHMARKS_DIR = Path(__file__).resolve().parent
# The line a worker subprocess prints before its JSON answer, so that other output cannot be mistaken for it.
WORKER_MARKER = "M2F_BENCHMARK_RESULT "


# ------------------------------------------------------------------------------------------------ scripts


def load_benchmark_script(name: str) -> ModuleType:
    """Import `benchmarks/<name>.py` of this source tree as a module (e.g. `"bench_inference"`)."""
    path = BENCHMARKS_DIR / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"Benchmark script {path} not found.")
    spec = importlib.util.spec_from_file_location(f"m2f_benchmarks.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_worker(script: str | Path, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run `python <script> --worker <payload JSON>` in a fresh process and return the JSON it answers.

    A fresh process is how the peak memory of one configuration is measured on the CPU: its high-water mark starts
    at zero, untouched by earlier configurations.
    """
    command = [sys.executable, str(script), "--worker", json.dumps(payload)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(WORKER_MARKER):
            return json.loads(line[len(WORKER_MARKER) :])
    raise RuntimeError(
        f"Benchmark worker failed (exit code {completed.returncode}): {' '.join(command)}\n{completed.stderr[-4000:]}"
    )


def answer_as_worker(result: dict[str, Any]) -> None:
    """Print a worker's answer where [`run_worker`] looks for it."""
    print(WORKER_MARKER + json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------------ machine


def machine_info(device: torch.device | str = "cpu") -> dict[str, Any]:
    """What a result depends on: CPU model and cores, RAM, torch version and threads, GPU name if used."""
    info = {
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "ram_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_model() -> str:
    """The `model name` line of /proc/cpuinfo (as `lscpu` shows it), or the platform's processor string."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# ------------------------------------------------------------------------------------------------ timing


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so that wall-clock times cover it (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


class PartTimer:
    """Accumulates the wall-clock time spent inside named submodules, through forward hooks.

    A module called several times in one run (a frame chunk at a time, a frame at a time) adds up. On CUDA the
    hooks synchronise, so each part includes its own kernels. Use as a context manager; `reset()` between runs.
    """

    def __init__(self, modules: dict[str, nn.Module], device: torch.device | str = "cpu"):
        self.modules = modules
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self._started: dict[str, float] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> PartTimer:
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_pre_hook(self._start_hook(name)))
            self._handles.append(module.register_forward_hook(self._stop_hook(name)))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.seconds = defaultdict(float)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        """Time a block of code that is not a module call (post-processing) as part `name`."""
        synchronize(self.device)
        start = time.perf_counter()
        yield
        synchronize(self.device)
        self.seconds[name] += time.perf_counter() - start

    def _start_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any) -> None:
            synchronize(self.device)
            self._started[name] = time.perf_counter()

        return hook

    def _stop_hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            synchronize(self.device)
            self.seconds[name] += time.perf_counter() - self._started.pop(name)

        return hook


def time_runs(
    run: Callable[[], Any], repeats: int, warmup: int, timer: PartTimer | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Median wall-clock time of `run()` over `repeats` runs after `warmup` unmeasured ones.

    With a `timer`, also the median of every part it measured. Returns `{"total_s", "parts_s", "runs_s"}`.
    """
    timers = {"run": timer} if timer is not None else {}
    return time_runs_interleaved({"run": run}, repeats, warmup, timers, device)["run"]


def time_runs_interleaved(
    runs: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: int,
    timers: dict[str, PartTimer] | None = None,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """[`time_runs`] for several runs taken in turn (A B A B ...), so that a change of load on a shared machine
    affects all of them alike and their ratio stays meaningful. Returns one summary per name.
    """
    timers = timers or {}
    for _ in range(warmup):
        for run in runs.values():
            run()
    totals: dict[str, list[float]] = defaultdict(list)
    parts: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(repeats):
        for name, run in runs.items():
            if name in timers:
                timers[name].reset()
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            totals[name].append(time.perf_counter() - start)
            for part, seconds in (timers[name].seconds if name in timers else {}).items():
                parts[name][part].append(seconds)
    return {
        name: {
            "total_s": statistics.median(totals[name]),
            "parts_s": {part: statistics.median(values) for part, values in parts[name].items()},
            "runs_s": totals[name],
        }
        for name in runs
    }


# ------------------------------------------------------------------------------------------------ memory


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set size (Linux `clear_refs`); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """This process's peak resident set size since start or the last [`reset_peak_rss`]."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_rss_bytes() -> int:
    """This process's resident set size now."""
    import psutil

    return psutil.Process().memory_info().rss


@contextlib.contextmanager
def measure_peak_memory(device: torch.device | str, result: dict[str, Any]) -> Iterator[None]:
    """Fill `result` with the peak memory of the block.

    CUDA: `peak_bytes` is the most memory allocated by tensors during the block, `baseline_bytes` what was
    allocated before (weights, inputs). CPU: `peak_bytes` is the process's peak RSS during the block (weights,
    inputs and libraries included), `baseline_bytes` the RSS before it; run one configuration per process.
    """
    if torch.device(device).type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        result["baseline_bytes"] = torch.cuda.memory_allocated(device)
        yield
        synchronize(device)
        result.update(peak_bytes=torch.cuda.max_memory_allocated(device), memory_kind="cuda_max_allocated")
        return
    result["baseline_bytes"] = current_rss_bytes()
    exact = reset_peak_rss()
    yield
    result.update(peak_bytes=peak_rss_bytes(), memory_kind="peak_rss" if exact else "peak_rss_since_start")


# ------------------------------------------------------------------------------------------------ precision


def autocast_context(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """bf16 autocast for the `bf16` and `bf16-compile` precisions, nothing for `fp32`."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision.startswith("bf16"):
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    raise ValueError(f"Unknown precision {precision!r}: expected fp32, bf16 or bf16-compile")


def compile_forwards(modules: Sequence[nn.Module]) -> None:
    """Replace each module's `forward` by a `torch.compile`d one, leaving its hooks (and so the timers) eager."""
    for module in modules:
        module.forward = torch.compile(module.forward)


# ------------------------------------------------------------------------------------------------ output


def gigabytes(num_bytes: float | None) -> str:
    return "" if num_bytes is None else f"{num_bytes / 1e9:.2f} GB"


def seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def write_records(path: str | Path | None, benchmark: str, records: list[dict[str, Any]], **context: Any) -> None:
    """Write `{"benchmark", "machine", "command", ..., "records"}` as JSON to `path` (nothing if `path` is None)."""
    if path is None:
        return
    document = {"benchmark": benchmark, "command": " ".join(sys.argv), **context, "records": records}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(document, indent=1))
