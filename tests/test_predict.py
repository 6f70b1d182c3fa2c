"""`m2f-video predict` and `m2f-video demo`: files written, pictures, several processes, failed videos, Ctrl-C,
output folders, remote-code model folders."""

import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from inference_helpers import HEIGHT, WIDTH, save_tiny_model, synthetic_frames
from PIL import Image

from modeling_m2f_video import batch_prediction, cli, demo
from modeling_m2f_video.demo import DEMO_MODEL_DIR, demo_video, resolve_model_path, volume_iou
from modeling_m2f_video.errors import UserInputError
from modeling_m2f_video.hub import export_hub_folder
from modeling_m2f_video.processing.video_io import open_video, write_video
from modeling_m2f_video.ytvis.rle import decode_rle


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder with two short mp4 videos and one webm, and a folder of PNG frames."""
    root = tmp_path_factory.mktemp("videos")
    folder = root / "clips"
    folder.mkdir()
    write_video(folder / "first.mp4", synthetic_frames(5, index=0))
    write_video(folder / "second.mp4", synthetic_frames(4, index=1))
    write_video(folder / "third.webm", synthetic_frames(3, index=2))
    frames = root / "frames"
    frames.mkdir()
    for index, frame in enumerate(synthetic_frames(4, index=3)):
        Image.fromarray(frame).save(frames / f"{index:03d}.png")
    return {"folder": folder, "frames": frames}


def read_outputs(output):
    return json.loads((output / "results.json").read_text()), json.loads((output / "videos.json").read_text())


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def part_files(output):
    return sorted(output.glob("predict-part-*.jsonl"))


def test_predict_writes_results_overlays_and_sheets(model_dir, videos, tmp_path, capsys):
    output = tmp_path / "out"
    video = videos["folder"] / "first.mp4"
    argv = ["predict", str(video), str(videos["frames"]), "--model", str(model_dir), "--output", str(output)]
    assert cli.main([*argv, "--top-k", "1", "--overlay-threshold", "0", "--no-progress"]) == 0
    assert str(output / "results.json") in capsys.readouterr().out

    results, listing = read_outputs(output)
    assert [(v["id"], v["name"], v["length"]) for v in listing["videos"]] == [(0, "first", 5), (1, "frames", 4)]
    assert [c["id"] for c in listing["categories"]] == [1, 2, 3]
    assert sorted(r["video_id"] for r in results) == [0, 1]
    for record in results:
        assert record["category_id"] in (1, 2, 3) and 0 <= record["score"] <= 1
        length = listing["videos"][record["video_id"]]["length"]
        assert len(record["segmentations"]) == length
        assert all(rle is None or decode_rle(rle).shape == (HEIGHT, WIDTH) for rle in record["segmentations"])

    # The overlay has every frame, and is tinted where the (only) instance's mask is.
    record = next(r for r in results if r["video_id"] == 0)
    original = open_video(video).read().astype(float)
    overlay = open_video(output / "first_overlay.mp4").read().astype(float)
    assert overlay.shape == original.shape
    masks = np.stack([decode_rle(rle) if rle else np.zeros((HEIGHT, WIDTH), bool) for rle in record["segmentations"]])
    change = np.abs(overlay - original).mean(axis=-1)
    assert masks.any() and (~masks).any()
    assert change[masks].mean() > change[~masks].mean() + 15
    with Image.open(output / "first_sheet.png") as sheet:
        assert sheet.width > WIDTH and sheet.height > HEIGHT
    assert (output / "frames_overlay.mp4").is_file() and (output / "frames_sheet.png").is_file()
    assert part_files(output) == []  # merged into the JSON files


def test_predict_clip_length_runs_clip_by_clip(model_dir, videos, tmp_path):
    output = tmp_path / "out"
    argv = ["predict", str(videos["folder"] / "first.mp4"), "--model", str(model_dir), "--output", str(output)]
    assert cli.main([*argv, "--clip-length", "3", "--clip-overlap", "1", "--no-pictures", "--no-progress"]) == 0
    results, _ = read_outputs(output)
    assert len(results) == 10 and all(len(r["segmentations"]) == 5 for r in results)


def test_predict_reports_a_bad_video_and_goes_on(model_dir, videos, tmp_path, capsys):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    output = tmp_path / "out"
    argv = ["predict", str(videos["folder"] / "first.mp4"), str(bad), "--model", str(model_dir)]
    assert cli.main([*argv, "--output", str(output), "--no-pictures", "--no-progress"]) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {bad}: not a readable video file")
    results, listing = read_outputs(output)
    error = listing["videos"][1]["error"]
    assert error["type"] == "ValueError" and error["message"].startswith(f"{bad}: not a readable video file")
    assert {r["video_id"] for r in results} == {0}


def test_any_exception_of_one_video_is_recorded_and_the_others_go_on(model_dir, videos, tmp_path, capsys, monkeypatch):
    """Pillow refuses the frames of the frame folder (`DecompressionBombError`, not a ValueError); the mp4 is done."""
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", HEIGHT * WIDTH // 4)
    output = tmp_path / "out"
    argv = ["predict", str(videos["frames"]), str(videos["folder"] / "first.mp4"), "--model", str(model_dir)]
    assert cli.main([*argv, "--output", str(output), "--overlay-threshold", "0", "--no-progress"]) == 1
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {videos['frames']}: ") and line.endswith("(DecompressionBombError)")
    results, listing = read_outputs(output)
    assert listing["videos"][0]["error"]["type"] == "DecompressionBombError"
    assert {r["video_id"] for r in results} == {1}
    assert sorted(path.name for path in output.iterdir()) == [
        "first_overlay.mp4",
        "first_sheet.png",
        "results.json",
        "videos.json",
    ]


def test_ctrl_c_keeps_the_finished_videos(model_dir, videos, tmp_path, capsys, monkeypatch):
    """Each finished video is on disk at once; Ctrl-C during the second writes the JSON of the first and exits 130."""
    output = tmp_path / "out"
    real_open_video = batch_prediction.open_video

    def open_video(video, **options):
        if "second" in str(video):
            [part] = part_files(output)
            assert [json.loads(line)["video"]["name"] for line in part.read_text().splitlines()] == ["first"]
            raise KeyboardInterrupt
        return real_open_video(video, **options)

    monkeypatch.setattr(batch_prediction, "open_video", open_video)
    argv = ["predict", str(videos["folder"]), "--model", str(model_dir), "--output", str(output), "--no-progress"]
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert f"results of the 1 of 3 videos finished before the interrupt kept in {output / 'results.json'}" in err
    assert err.rstrip().endswith("predict: interrupted")
    results, listing = read_outputs(output)
    assert {r["video_id"] for r in results} == {0} and results
    assert [v["name"] for v in listing["videos"]] == ["first", "second", "third"]
    assert "error" not in listing["videos"][0]
    assert [v["error"]["type"] for v in listing["videos"][1:]] == ["KeyboardInterrupt"] * 2
    assert part_files(output) == [] and not list(output.glob("second_*"))


def test_a_previous_run_is_refused_unless_overwrite(model_dir, videos, tmp_path, capsys):
    output = tmp_path / "out"
    options = ["--model", str(model_dir), "--output", str(output), "--no-pictures", "--no-progress"]
    assert cli.main(["predict", str(videos["folder"] / "first.mp4"), *options]) == 0
    before = read_outputs(output)
    capsys.readouterr()
    assert cli.main(["predict", str(videos["frames"]), *options]) == 2
    assert error_lines(capsys.readouterr().err) == [
        f"error: {output}: the output folder is not empty; pass --overwrite (overwrite=True) to write into it "
        "(a previous run's results.json and videos.json are then removed first)"
    ]
    assert read_outputs(output) == before
    assert cli.main(["predict", str(videos["frames"]), *options, "--overwrite"]) == 0
    assert [v["name"] for v in read_outputs(output)[1]["videos"]] == ["frames"]


def test_videos_with_the_same_stem_get_distinct_pictures(model_dir, tmp_path):
    """`a.mp4`, `x/a.mp4` and `a_1.mp4` once gave `a_0`, `a_1`, `a_0`: one overlay overwrote another."""
    inputs = [tmp_path / "a.mp4", tmp_path / "x" / "a.mp4", tmp_path / "a_1.mp4"]
    inputs[1].parent.mkdir()
    for index, path in enumerate(inputs):
        write_video(path, synthetic_frames(2, index=index))
    output = tmp_path / "out"
    assert (
        cli.main(["predict", *map(str, inputs), "--model", str(model_dir), "--output", str(output), "--no-progress"])
        == 0
    )
    _, listing = read_outputs(output)
    assert [v["name"] for v in listing["videos"]] == ["a", "a_2", "a_1"]
    assert len({v["overlay"] for v in listing["videos"]}) == 3
    assert all((output / v["overlay"]).is_file() and (output / v["sheet"]).is_file() for v in listing["videos"])


@pytest.mark.parametrize(
    "options",
    [
        {"top_k": -1},
        {"clip_length": 0},
        {"fps": 0},
        {"threshold": float("nan")},
        {"overlay_threshold": 1.5},
        {"frame_stride": True},
        {"max_frames": 0},
        {"clip_length": 4, "clip_overlap": 4},
        {"mode": "fast"},
        {"names": ["a", "A"]},
    ],
)
def test_bad_arguments_of_predict_videos_name_the_argument(options, model_dir, tmp_path):
    argument = list(options)[-1]
    with pytest.raises(ValueError, match=f"^{argument}: "):
        batch_prediction.predict_videos([synthetic_frames(2)] * 2, str(model_dir), tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_model_folder_without_processor_config(videos, tmp_path, capsys):
    folder = save_tiny_model(tmp_path / "bare_model", with_processor=False)
    argv = ["predict", str(videos["frames"]), "--model", str(folder), "--output", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {folder}: cannot load the model: the model folder has no video processor config")


def test_an_exported_folder_needs_trust_remote_code(model_dir, videos, tmp_path, capsys):
    """A folder made by `export-hub` runs its own copy of the code, with `--trust-remote-code` only."""
    exported = export_hub_folder(model_dir, tmp_path / "exported")
    argv = ["predict", str(videos["folder"] / "first.mp4"), "--no-pictures", "--no-progress", "--top-k", "2"]
    assert cli.main([*argv, "--model", str(exported), "--output", str(tmp_path / "refused")]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert line.startswith(f"error: {exported}: the model folder brings its own Python code")
    assert "--trust-remote-code" in line and not (tmp_path / "refused").exists()

    assert (
        cli.main([*argv, "--model", str(exported), "--output", str(tmp_path / "remote"), "--trust-remote-code"]) == 0
    )
    assert cli.main([*argv, "--model", str(model_dir), "--output", str(tmp_path / "package")]) == 0
    remote, package = read_outputs(tmp_path / "remote")[0], read_outputs(tmp_path / "package")[0]
    assert [r["segmentations"] for r in remote] == [r["segmentations"] for r in package] and remote


def test_two_processes_give_the_single_process_results(model_dir, videos, tmp_path):
    """`accelerate launch` with 2 CPU processes splits the videos and merges exactly what one process finds."""
    single, double = tmp_path / "single", tmp_path / "double"
    options = ["--model", str(model_dir), "--top-k", "2", "--no-pictures", "--no-progress"]
    assert cli.main(["predict", str(videos["folder"]), "--output", str(single), *options]) == 0
    # Without GPUs, `--multi_gpu` starts the processes with torchrun and the gloo backend on the CPU.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    command = [*launch, "-m", "modeling_m2f_video.cli", "predict", str(videos["folder"]), "--output", str(double)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [*command, *options], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]

    single_results, single_videos = read_outputs(single)
    double_results, double_videos = read_outputs(double)
    assert {v["process"] for v in double_videos["videos"]} == {0, 1}
    assert [v["name"] for v in double_videos["videos"]] == ["first", "second", "third"]
    assert len(double_results) == len(single_results) == 6
    for one, two in zip(single_results, double_results):
        assert (one["video_id"], one["category_id"], one["segmentations"]) == (
            two["video_id"],
            two["category_id"],
            two["segmentations"],
        )
        assert one["score"] == pytest.approx(two["score"], rel=1e-5)


# ----------------------------------------------------------------------------------------------- the demo


def test_demo_without_the_demo_model_says_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_MODEL_DIR", tmp_path / "not_installed")
    with pytest.raises(UserInputError, match="demo model is not installed"):
        resolve_model_path("demo")
    assert cli.main(["demo", "--output", str(tmp_path)]) == 2
    assert cli.main(["predict", str(tmp_path), "--model", "demo", "--output", str(tmp_path / "out")]) == 2
    expected = f"error: {tmp_path / 'not_installed'}: the demo model is not installed"
    assert [line[: len(expected)] for line in error_lines(capsys.readouterr().err)] == [expected] * 2


def test_demo_finds_the_generated_objects(tmp_path, capsys):
    assert cli.main(["demo", "--output", str(tmp_path), "--no-progress"]) == 0
    assert cli.main(["demo", "--output", str(tmp_path), "--no-progress"]) == 0  # a second run replaces the files
    printed = capsys.readouterr().out
    assert str(tmp_path / "demo_video_overlay.mp4") in printed
    results, listing = read_outputs(tmp_path)
    video = listing["videos"][0]
    assert (tmp_path / video["overlay"]).is_file() and (tmp_path / video["sheet"]).is_file()
    assert open_video(tmp_path / video["overlay"]).num_frames == video["length"]

    from transformers import AutoConfig

    truth = demo_video(
        None,
        num_frames=video["length"],
        height=video["height"],
        width=video["width"],
        num_classes=AutoConfig.from_pretrained(DEMO_MODEL_DIR).num_labels,
    )
    predicted = [
        np.stack([decode_rle(rle) if rle else np.zeros(truth.masks.shape[2:], bool) for rle in r["segmentations"]])
        for r in results
    ]
    best = [max((volume_iou(mask, p) for p in predicted), default=0.0) for mask in truth.masks]
    assert np.mean(np.array(best) > 0.5) >= 0.5, best


# ------------------------------------------------------------------------------------------------ --online


def test_predict_online_writes_each_frame_and_one_record_per_track(tmp_path, capsys):
    from modeling_m2f_video.inference.online import TrackRecords, segment_stream
    from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

    video = tmp_path / "stream.mp4"
    write_video(video, demo_video(None, num_frames=12, height=96, width=128, num_classes=2).frames)
    output = tmp_path / "out"
    argv = ["predict", str(video), "--model", "demo", "--output", str(output), "--online", "--no-progress"]
    assert cli.main([*argv, "--window", "4", "--window-overlap", "1"]) == 0
    frames = [json.loads(line) for line in (output / "stream_frames.jsonl").read_text().splitlines()]
    results, index = read_outputs(output)
    assert [frame["frame"] for frame in frames] == list(range(12))
    assert index["videos"][0]["frames"] == "stream_frames.jsonl" and index["videos"][0]["overlay"]

    # The same as segment_stream on the decoded frames, collected by TrackRecords.
    from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation

    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(DEMO_MODEL_DIR).eval()
    tracks = TrackRecords()
    expected_frames = [
        tracks.add(frame)
        for frame in segment_stream(
            model,
            Mask2FormerVideoProcessor.from_pretrained(DEMO_MODEL_DIR),
            open_video(video).frames(),
            window=4,
            overlap=1,
        )
    ]
    assert frames == json.loads(json.dumps(expected_frames))
    assert results == json.loads(json.dumps(tracks.records(0)))
    assert results and all(len(record["segmentations"]) == 12 for record in results)
    assert any(frame["instances"] for frame in frames)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--top-k", "3"], "error: --top-k: does not apply with --online"),
        (["--mode", "clip"], "error: --mode: does not apply with --online"),
        (["--window", "4", "--window-overlap", "4"], "error: --window-overlap 4: must be less than --window (4)"),
    ],
)
def test_predict_online_refuses_options_of_the_other_modes(tmp_path, capsys, options, message):
    argv = ["predict", str(tmp_path / "v.mp4"), "--model", "demo", "--output", str(tmp_path / "out"), "--online"]
    assert cli.main([*argv, *options]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(message)


@pytest.mark.parametrize(
    "device, message",
    [
        ("foo", "error: --device foo: not a device name (cpu, cuda, cuda:1, mps, ...)"),
        ("cuda:7", "error: --device cuda:7: this machine has "),
    ],
)
def test_predict_names_a_device_it_cannot_use(tmp_path, capsys, device, message):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 CUDA devices")
    video = tmp_path / "v.mp4"
    write_video(video, synthetic_frames(2, index=0))
    argv = ["predict", str(video), "--model", "demo", "--output", str(tmp_path / "out"), "--device", device]
    assert cli.main(argv) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line.startswith(message)
