"""Batch prediction: segment many videos, split across Accelerate processes, and write YouTube-VIS results,
overlay videos and contact sheets (the library behind `m2f-video predict`).

Over many videos the work is split across processes: run the same command under `accelerate launch` (for
example `accelerate launch --num_processes 2 -m modeling_m2f_video.cli predict ...` on two GPUs; on a machine
without GPUs add `--multi_gpu`, which starts the processes with torchrun and the gloo backend). Each process
segments its share of the videos (Accelerate's `split_between_processes`) and draws their pictures. OUT must be
on a file system that every process sees (a shared one with several machines).

Files written to OUT:
- `results.json`: the YouTube-VIS submission, `[{video_id, category_id, score, segmentations}]`, one
  compressed RLE per frame (null where the mask is empty); `video_id` is the video's index in the input list
  and `category_id` the model's label id + 1 (`ytvis.records`);
- `videos.json`: the index -> video mapping (`id`, `name`, `path`, size and length, picture files, the
  process that segmented it, and `error: {type, message}` for a video that failed) and the categories;
- `<video>_overlay.mp4` and `<video>_sheet.png`: each instance in its own colour with its label and score;
- while the run goes on, `predict-part-<process>.jsonl`: one JSON line per finished video of that process.

Nothing is lost when one video fails or the run is stopped: a video that raises any exception gets its error
in `videos.json` and the others go on; each finished video is appended to its process's part file at once,
and the part files are merged into `results.json` and `videos.json` (each written to a temporary file and
renamed, so never half-written) at the end or on Ctrl-C. Only a killed process (SIGKILL) leaves part files
without the JSON. The output folder must be empty (or absent) unless `overwrite`, so that a previous run's
JSON never sits beside this run's pictures.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from itertools import count
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from tqdm.auto import tqdm
from transformers import pipeline

from .demo import resolve_model_path
from .deployment.onnx_folder import MANIFEST_FILE
from .deployment.onnx_runtime import RUNTIMES, load_onnx_pipeline
from .errors import UserInputError
from .inference.online import TrackRecords, segment_stream
from .inference.segment import MODES
from .inference.stream_defaults import STREAM_OVERLAP, STREAM_THRESHOLD, STREAM_WINDOW
from .pipeline_video_instance_segmentation import TASK
from .processing.video_io import VideoSource, open_video
from .registration import register
from .visualization import select_for_display, write_contact_sheet, write_overlay_video
from .ytvis.records import result_record
from .ytvis.rle import encode_rles, rle_areas

RESULTS_FILE = "results.json"
VIDEOS_FILE = "videos.json"
PART_FILE = "predict-part-{process}.jsonl"
FRAMES_FILE = "{name}_frames.jsonl"  # online mode: one line per frame

# Integer arguments of `predict_videos`: (smallest value, whether None is allowed).
_INT_OPTIONS = {
    "top_k": (1, True),
    "clip_length": (1, False),
    "clip_overlap": (0, False),
    "long_video_threshold": (0, False),
    "frame_stride": (1, False),
    "max_frames": (1, True),
    "sheet_frames": (1, False),
    "window": (1, False),
    "overlap": (0, False),
}
# Float arguments of `predict_videos`: (low, high, whether low itself is excluded); values must be finite, and
# None only where listed in `_OPTIONAL_FLOAT_OPTIONS`.
_OPTIONAL_FLOAT_OPTIONS = {"threshold"}
_FLOAT_OPTIONS = {
    "threshold": (0.0, 1.0, False),
    "overlay_threshold": (0.0, 1.0, False),
    "fps": (0.0, math.inf, True),
}
# What transformers, safetensors and the pipeline raise for a model folder they cannot load.
_MODEL_LOAD_ERRORS = (OSError, ValueError, SafetensorError, StrictDataclassError)


class PredictionInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `predict_videos`; `results.json` and `videos.json` hold the videos finished before it.

    `summary` is what `predict_videos` returns (videos not finished have an error saying so) and `finished` the
    number of videos that were.
    """

    def __init__(self, summary: dict, finished: int):
        super().__init__(f"interrupted after {finished} of {len(summary['videos'])} videos")
        self.summary = summary
        self.finished = finished


def predict_videos(
    videos: Sequence[Any],
    model: str,
    output: str | Path,
    names: Sequence[str] | None = None,
    top_k: int | None = None,
    threshold: float | None = None,
    mode: str = "auto",
    clip_length: int = 32,
    clip_overlap: int = 8,
    long_video_threshold: int = 64,
    frame_stride: int = 1,
    max_frames: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    fps: float = 10.0,
    overlay_threshold: float = 0.5,
    sheet_frames: int = 8,
    pictures: bool = True,
    progress: bool = True,
    overwrite: bool = False,
    trust_remote_code: bool = False,
    runtime: str = "torch",
    online: bool = False,
    window: int = STREAM_WINDOW,
    window_overlap: int = STREAM_OVERLAP,
) -> dict | None:
    """Segment `videos` (anything `open_video` accepts), split across the Accelerate processes.

    Writes `results.json` and `videos.json` (main process) and the pictures of each video (the process that
    segmented it) into `output`. A video that fails, with any exception, is reported in `videos.json` with its
    error and does not stop the others. Returns the summary `{"output", "videos", "results"}` on the main process
    and None on the others.

    Args:
        names: the name of each video in `videos.json` and its picture files (default: `unique_names(videos)`);
            they must be distinct, also ignoring case.
        overwrite: write into a non-empty `output`; a previous run's JSON and part files are removed first.
        trust_remote_code: let transformers run the Python code of a model folder made by `export-hub`.
        threshold: keep instances scoring above this (default 0, the model's `top_k` deciding; online
            `STREAM_THRESHOLD`, since every track of the stream is handed out).
        runtime: "torch" (a model folder or Hub id) or "onnx" (a folder written by `m2f-video export-onnx`, run
            by ONNX Runtime with the same pre- and post-processing; `device` picks its execution provider).
        online: segment each video as a stream (`inference.online.segment_stream`: windows of `window` frames
            sharing `window_overlap`), writing each frame's instances to `<name>_frames.jsonl` as it is final and
            one result record per track; `mode`, `clip_length`, `clip_overlap`, `long_video_threshold` and
            `top_k` do not apply.

    Raises:
        UserInputError (a ValueError): an argument is out of range (the message starts with its name), the model
            folder or `output` is unusable (the message starts with the path).
        PredictionInterrupted (a KeyboardInterrupt): on Ctrl-C, once the finished videos are written.
    """
    frame_options = {"frame_stride": frame_stride, "max_frames": max_frames}
    call_options = {
        "top_k": top_k,
        "threshold": threshold,
        "mode": mode,
        "clip_length": clip_length,
        "clip_overlap": clip_overlap,
        "long_video_threshold": long_video_threshold,
    }
    picture_options = {"fps": fps, "overlay_threshold": overlay_threshold, "sheet_frames": sheet_frames}
    stream_options = None
    if online:
        default_threshold = STREAM_THRESHOLD if threshold is None else threshold
        stream_options = {"window": window, "overlap": window_overlap, "threshold": default_threshold}
    _check_options({**frame_options, **call_options, **picture_options, **(stream_options or {})})
    names = unique_names(videos) if names is None else _check_names(names, len(videos))
    model_path = resolve_model_path(model)
    output = Path(output)
    _check_output(output, overwrite)

    state = _process_state(device)
    segmenter = build_pipeline(model_path, device or str(state.device), dtype, trust_remote_code, runtime)
    state.wait_for_everyone()  # every process has checked the output folder before any process writes to it
    _prepare_output(output, clean=state.is_main_process)
    state.wait_for_everyone()

    call_options.update(return_rle=True, progress=progress and state.is_local_main_process)
    work = list(enumerate(zip(videos, names)))
    try:
        _segment_share(
            state,
            segmenter,
            work,
            output,
            frame_options,
            call_options,
            picture_options if pictures else None,
            stream_options,
        )
    except KeyboardInterrupt as interrupt:
        if not state.is_main_process:
            raise
        summary, finished = _merge_parts(output, work, state.num_processes, segmenter.model.config)
        raise PredictionInterrupted(summary, finished) from interrupt
    state.wait_for_everyone()
    summary = None
    if state.is_main_process:
        summary, _ = _merge_parts(output, work, state.num_processes, segmenter.model.config)
    state.wait_for_everyone()
    return summary


def _check_options(options: dict[str, Any]) -> None:
    """Raise a `UserInputError` naming the first `predict_videos` argument in `options` that is out of range."""
    for argument, value in options.items():
        if argument in _INT_OPTIONS:
            minimum, optional = _INT_OPTIONS[argument]
            if not (optional and value is None) and not (_is_int(value) and value >= minimum):
                allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
                raise UserInputError(f"{argument}: must be {allowed}, got {value!r}")
        elif argument in _FLOAT_OPTIONS and not (value is None and argument in _OPTIONAL_FLOAT_OPTIONS):
            low, high, exclude_low = _FLOAT_OPTIONS[argument]
            number = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
            if not (number and (value > low if exclude_low else value >= low) and value <= high):
                interval = f"{'(' if exclude_low else '['}{low:g}, {high:g}{')' if math.isinf(high) else ']'}"
                raise UserInputError(f"{argument}: must be a finite number in {interval}, got {value!r}")
    if "mode" in options and options["mode"] not in MODES:
        raise UserInputError(f"mode: must be one of {', '.join(MODES)}, got {options['mode']!r}")
    for length, overlap in (("clip_length", "clip_overlap"), ("window", "overlap")):
        if options.get(overlap, 0) >= options.get(length, math.inf):
            raise UserInputError(f"{overlap}: must be less than {length} ({options[length]}), got {options[overlap]}")


def unique_names(videos: Sequence[Any]) -> list[str]:
    """A distinct, file-name-safe name per video, for `videos.json` and its picture files.

    The name is the video's file or folder stem (`video_<index>` for an in-memory video). Where a stem repeats
    (ignoring case, as some file systems do), the first video keeps it and each later one gets the smallest
    `_<n>` suffix (n = 1, 2, ...) that is no other video's stem and not yet given, so the names are distinct
    by construction: `a.mp4`, `x/a.mp4`, `a_1.mp4` become `a`, `a_2`, `a_1`.
    """
    stems = [_stem(video, index) for index, video in enumerate(videos)]
    taken = {stem.casefold() for stem in stems}
    seen, names = set(), []
    for stem in stems:
        name = stem
        if stem.casefold() in seen:
            name = next(f"{stem}_{n}" for n in count(1) if f"{stem}_{n}".casefold() not in taken)
            taken.add(name.casefold())
        seen.add(stem.casefold())
        names.append(name)
    return names


def _check_names(names: Sequence[str], num_videos: int) -> list[str]:
    """The given video names, checked: one per video, usable as a file name, distinct ignoring case."""
    names = list(names)
    if len(names) != num_videos:
        raise UserInputError(f"names: expected one name per video ({num_videos}), got {len(names)}")
    for name in names:
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise UserInputError(f"names: {name!r} cannot be a file name")
    folded = [name.casefold() for name in names]
    repeated = sorted({name for name, key in zip(names, folded) if folded.count(key) > 1})
    if repeated:
        raise UserInputError(f"names: repeated (ignoring case): {', '.join(repeated)}")
    return names


def to_records(video_id: int, instances: list[dict]) -> list[dict]:
    """YouTube-VIS result records of one video's pipeline instances (masks as RLEs; null where a mask is empty)."""
    return [
        result_record(
            video_id,
            instance["label_id"],
            instance["score"],
            [rle if area else None for rle, area in zip(instance["masks"], rle_areas(instance["masks"]))],
        )
        for instance in instances
    ]


# ----------------------------------------------------------------------------------------------- one video


def _segment_share(
    state: PartialState,
    segmenter,
    work: list,
    output: Path,
    frame_options: dict,
    call_options: dict,
    picture_options: dict | None,
    stream_options: dict | None,
) -> None:
    """Segment this process's share of the `(index, (video, name))` work, each finished video appended at once to
    the process's part file."""
    part = output / PART_FILE.format(process=state.process_index)
    with state.split_between_processes(work) as share:
        for index, (video, name) in tqdm(share, desc="videos", disable=not call_options["progress"]):
            outcome = _predict_one(
                segmenter, index, video, name, output, frame_options, call_options, picture_options, stream_options
            )
            _append_line(part, outcome)


def _predict_one(
    segmenter,
    index: int,
    video: Any,
    name: str,
    output: Path,
    frame_options: dict,
    call_options: dict,
    picture_options: dict | None,
    stream_options: dict | None,
) -> dict:
    """Segment one video (whole / clip by clip, or online with `stream_options`) and draw its pictures:
    `{"video": videos.json entry, "records": results}`.

    Any exception of this video (an unreadable file, Pillow's `DecompressionBombError`, running out of memory)
    becomes the entry's `error`; Ctrl-C and `SystemExit` go through. Either way no half-written picture is left;
    an online run's frame file keeps the frames finished before the error.
    """
    entry = {**_video_entry(index, video, name), "process": PartialState().process_index}  # `predict_videos`' state
    pictures = {} if picture_options is None else _picture_paths(output, name)
    try:
        source = open_video(video, name=name, **frame_options)
        entry.update(length=source.num_frames, height=source.height, width=source.width)
        if stream_options is None:
            # The pipeline is given the input itself, not `source`: a remote-code pipeline has its own video classes.
            instances = segmenter(video, **frame_options, **call_options)
            records = to_records(index, instances)
        else:
            entry["frames"] = FRAMES_FILE.format(name=name)
            records = _segment_online(segmenter, index, source, output / entry["frames"], stream_options, call_options)
            instances = _display_instances(records, segmenter.model.config, source)
        if picture_options is not None:
            shown = select_for_display(instances, min_score=picture_options["overlay_threshold"])
            write_overlay_video(
                pictures["overlay"], source, shown, fps=picture_options["fps"], progress=call_options["progress"]
            )
            write_contact_sheet(pictures["sheet"], source, shown, num_frames=picture_options["sheet_frames"])
            entry.update({key: path.name for key, path in pictures.items()})
    except Exception as error:  # one failed video must not lose the others
        _remove(pictures.values())
        return {"video": {**entry, "error": {"type": type(error).__name__, "message": str(error)}}, "records": []}
    except BaseException:
        _remove(pictures.values())
        raise
    return {"video": entry, "records": records}


def _segment_online(
    segmenter, index: int, source: VideoSource, frames_file: Path, stream_options: dict, call_options: dict
) -> list[dict]:
    """Segment `source` as a stream, appending each frame's record to `frames_file` as soon as it is final;
    returns one YouTube-VIS result record per track."""
    stream = segment_stream(segmenter.model, segmenter.video_processor, source.frames(), **stream_options)
    tracks = TrackRecords()
    progress = tqdm(total=source.num_frames, desc="frames", unit="frame", disable=not call_options["progress"])
    with frames_file.open("w", encoding="utf-8") as lines, progress:
        for frame in stream:
            lines.write(json.dumps(tracks.add(frame)) + "\n")
            lines.flush()
            progress.update()
    return tracks.records(index)


def _display_instances(records: list[dict], config, source: VideoSource) -> list[dict]:
    """Result records as the pictures' instances (`score`, `label`, a mask per frame; empty where null)."""
    empty = encode_rles(np.zeros((1, source.height, source.width), dtype=bool))[0]
    return [
        {
            "score": record["score"],
            "label": config.id2label[record["category_id"] - 1],
            "masks": [rle or empty for rle in record["segmentations"]],
        }
        for record in records
    ]


def _picture_paths(output: Path, name: str) -> dict[str, Path]:
    """Where the pictures of the video `name` go: its overlay video and contact sheet."""
    return {"overlay": output / f"{name}_overlay.mp4", "sheet": output / f"{name}_sheet.png"}


def _remove(paths) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------- output files


def _check_output(output: Path, overwrite: bool) -> None:
    """Refuse, before anything is loaded or written, an output path that is (or is inside) a file, that cannot be
    written, or that is a non-empty folder unless `overwrite`."""
    existing = next(path for path in (output, *output.absolute().parents) if path.exists())
    if not existing.is_dir():
        where = "is a file" if existing == output else f"{existing} is a file"
        raise UserInputError(f"{output}: {where}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserInputError(f"{output}: {'the output folder' if existing == output else existing} is not writable")
    if existing == output and not overwrite and any(output.iterdir()):
        raise UserInputError(
            f"{output}: the output folder is not empty; pass --overwrite (overwrite=True) to write into it "
            f"(a previous run's {RESULTS_FILE} and {VIDEOS_FILE} are then removed first)"
        )


def _prepare_output(output: Path, clean: bool) -> None:
    """Create the output folder; with `clean`, remove a previous run's JSON and part files from it."""
    output.mkdir(parents=True, exist_ok=True)
    if clean:
        _remove([output / RESULTS_FILE, output / VIDEOS_FILE, *output.glob(PART_FILE.format(process="*"))])


def _append_line(part: Path, outcome: dict) -> None:
    """Append one finished video to its process's part file (closed at once, so other machines see it)."""
    with part.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(outcome) + "\n")


def _read_parts(output: Path, num_processes: int) -> tuple[list[dict], list[Path]]:
    """The outcomes in the part files of all processes, and those files.

    A last line cut short (a process killed while writing it) is skipped.
    """
    outcomes, parts = [], []
    for process in range(num_processes):
        part = output / PART_FILE.format(process=process)
        if not part.is_file():
            continue
        parts.append(part)
        for line in part.read_text(encoding="utf-8").splitlines():
            try:
                outcomes.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return outcomes, parts


def _merge_parts(output: Path, work: list, num_processes: int, config) -> tuple[dict, int]:
    """Write results.json and videos.json from the part files and remove them; return the summary and the number
    of finished videos. A video with no outcome (the run was interrupted first) is listed with an error."""
    outcomes, parts = _read_parts(output, num_processes)
    finished = {outcome["video"]["id"]: outcome for outcome in outcomes}
    ordered = [finished.get(index) or _unfinished(index, video, name) for index, (video, name) in work]
    results = [record for outcome in ordered for record in outcome["records"]]
    videos = [outcome["video"] for outcome in ordered]
    categories = [{"id": label + 1, "name": name} for label, name in sorted(config.id2label.items())]
    _write_atomically(output / RESULTS_FILE, json.dumps(results))
    _write_atomically(output / VIDEOS_FILE, json.dumps({"videos": videos, "categories": categories}, indent=1))
    _remove(parts)
    return {"output": str(output), "videos": videos, "results": results}, len(finished)


def _unfinished(index: int, video: Any, name: str) -> dict:
    """The outcome of a video the run was interrupted before finishing."""
    error = {"type": "KeyboardInterrupt", "message": "not segmented: the run was interrupted first"}
    return {"video": {**_video_entry(index, video, name), "error": error}, "records": []}


def _video_entry(index: int, video: Any, name: str) -> dict:
    """The start of a video's `videos.json` entry: its id, name and path (None for an in-memory video)."""
    return {"id": index, "name": name, "path": str(video) if isinstance(video, (str, os.PathLike)) else None}


def _write_atomically(path: Path, text: str) -> None:
    """Write a temporary file beside `path` and rename it to `path`, so `path` is never half-written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ------------------------------------------------------------------------------------------------ helpers


def _stem(video: Any, index: int) -> str:
    """A video's own name: its file or folder stem, or `video_<index>` for an in-memory video."""
    if isinstance(video, (str, os.PathLike)):
        return Path(video).stem or f"video_{index}"
    return f"video_{index}"


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _process_state(device: str | None) -> PartialState:
    """Accelerate's view of the launched processes.

    Without an accelerator (or with `--device cpu`) it must be asked for the CPU state: only that one joins
    the processes that `accelerate launch` started (with the gloo backend); otherwise each would run alone.
    """
    return PartialState(cpu=device == "cpu" or not torch.accelerator.is_available())


def build_pipeline(model_path: str, device: str, dtype: str | None, trust_remote_code: bool, runtime: str = "torch"):
    """The video instance segmentation pipeline of a model folder (or Hub id), or of an exported ONNX folder.

    A model that cannot be loaded (a truncated weights file, a bad `config.json`, no processor config) is a
    `UserInputError` that names it, as is a folder with its own pipeline code when `trust_remote_code` is off, and
    an exported ONNX folder without `runtime="onnx"`.
    """
    if runtime not in RUNTIMES:
        raise UserInputError(f"runtime: must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        return load_onnx_pipeline(model_path, device, dtype)
    check_device(device)
    if (Path(model_path) / MANIFEST_FILE).is_file():
        raise UserInputError(f"{model_path}: an exported ONNX folder; run it with --runtime onnx (runtime='onnx')")
    if not trust_remote_code and _has_remote_pipeline(model_path):
        raise UserInputError(
            f"{model_path}: the model folder brings its own Python code (as `m2f-video export-hub` writes it); "
            "pass --trust-remote-code (trust_remote_code=True) to run it"
        )
    register()
    try:
        return pipeline(
            TASK,
            model=model_path,
            device=device,
            dtype=getattr(torch, dtype) if dtype else None,
            trust_remote_code=trust_remote_code,
        )
    except _MODEL_LOAD_ERRORS as error:
        message = " ".join(str(error).removeprefix(f"{model_path}: ").split())  # one line
        raise UserInputError(f"{model_path}: cannot load the model: {message}") from error


def check_device(device: str) -> None:
    """Refuse a device torch does not know or this machine does not have, naming it and what there is."""
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UserInputError(f"--device {device}: not a device name (cpu, cuda, cuda:1, mps, ...)") from error
    if wanted.type == "cpu":
        return
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is None or accelerator.type != wanted.type:
        available = "cpu" + (f" and {accelerator.type}" if accelerator is not None else "")
        raise UserInputError(f"--device {device}: this machine has no {wanted.type} device (available: {available})")
    count = torch.accelerator.device_count()
    if wanted.index is not None and wanted.index >= count:
        raise UserInputError(f"--device {device}: this machine has {count} {wanted.type} device(s), from index 0")


def _has_remote_pipeline(model_path: str) -> bool:
    """Whether a local model folder's config names its own pipeline code for the task (`custom_pipelines`)."""
    config_file = Path(model_path) / "config.json"
    if not config_file.is_file():
        return False
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False  # transformers reports the bad file when it loads it
    return isinstance(config, dict) and TASK in (config.get("custom_pipelines") or {})
