"""`m2f-video predict` and `m2f-video demo`: files written, pictures, several processes, errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from inference_helpers import HEIGHT, WIDTH, save_tiny_model, synthetic_frames
from PIL import Image

from modeling_m2f_video import cli, demo
from modeling_m2f_video.demo import DEMO_MODEL_DIR, demo_video, resolve_model_path, volume_iou
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
    assert "notes.mp4" in capsys.readouterr().err
    results, listing = read_outputs(output)
    assert "notes.mp4" in listing["videos"][1]["error"]
    assert {r["video_id"] for r in results} == {0}


def test_model_folder_without_processor_config(videos, tmp_path, capsys):
    folder = save_tiny_model(tmp_path / "bare_model", with_processor=False)
    argv = ["predict", str(videos["frames"]), "--model", str(folder), "--output", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    assert "bare_model" in capsys.readouterr().err


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
    with pytest.raises(FileNotFoundError, match="demo model is not installed"):
        resolve_model_path("demo")
    assert cli.main(["demo", "--output", str(tmp_path)]) == 2
    assert "demo model is not installed" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path), "--model", "demo", "--output", str(tmp_path / "out")]) == 2


def test_demo_finds_the_generated_objects(tmp_path, capsys):
    assert cli.main(["demo", "--output", str(tmp_path), "--no-progress"]) == 0
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
