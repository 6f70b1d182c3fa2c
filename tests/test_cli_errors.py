"""Ordinary user errors of `predict`, `evaluate`, `demo` and `make-synthetic` give one `error: <what>: <problem>`
line and a non-zero exit status, never a traceback; bad numbers are refused by argparse before any work."""

import json

import pytest
from inference_helpers import save_tiny_model, synthetic_frames

from modeling_m2f_video import batch_prediction, cli
from modeling_m2f_video.processing.video_io import write_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", synthetic_frames(3))


def the_error(capsys) -> str:
    """The one `error:` line on stderr (argparse's own errors aside)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, lines
    return lines[0]


def predict(video, model, output, *options) -> int:
    return cli.main(["predict", str(video), "--model", str(model), "--output", str(output), "--no-progress", *options])


# ----------------------------------------------------------------------------------------------------- predict


def test_predict_output_that_is_a_file(model_dir, video, tmp_path, capsys):
    output = tmp_path / "out.txt"
    output.write_text("notes")
    assert predict(video, model_dir, output) == 2
    assert the_error(capsys) == f"error: {output}: is a file, not a folder"


def test_predict_output_that_is_not_writable(model_dir, video, tmp_path, capsys, monkeypatch):
    # As root, permission bits do not stop writes; ask the folder's access as a user without write permission would.
    output = tmp_path / "read_only"
    output.mkdir()
    monkeypatch.setattr(batch_prediction.os, "access", lambda path, mode: False)
    assert predict(video, model_dir, output) == 2
    assert the_error(capsys) == f"error: {output}: the output folder is not writable"


def test_predict_output_below_a_file(model_dir, video, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert predict(video, model_dir, tmp_path / "file" / "out") == 2
    assert the_error(capsys) == f"error: {tmp_path / 'file' / 'out'}: {tmp_path / 'file'} is a file, not a folder"


def test_predict_model_that_is_a_file(video, tmp_path, capsys):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    assert predict(video, model, tmp_path / "out") == 2
    assert the_error(capsys) == f"error: {model}: is a file; pass the model folder (the one holding config.json)"


def test_predict_missing_model(video, tmp_path, capsys):
    assert predict(video, tmp_path / "no_model", tmp_path / "out") == 2
    assert the_error(capsys) == f"error: {tmp_path / 'no_model'}: no such model folder"
    assert not (tmp_path / "out").exists()


def test_predict_folder_that_is_no_model(video, tmp_path, capsys):
    assert predict(video, tmp_path, tmp_path / "out") == 2
    assert the_error(capsys) == f"error: {tmp_path}: not a model folder (it has no config.json)"


def test_predict_truncated_weights(model_dir, video, tmp_path, capsys):
    broken = save_tiny_model(tmp_path / "broken")
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert predict(video, broken, tmp_path / "out") == 2
    assert the_error(capsys).startswith(f"error: {broken}: cannot load the model: ")
    assert not (tmp_path / "out").exists()


def test_predict_bad_config_json(video, tmp_path, capsys):
    broken = save_tiny_model(tmp_path / "broken")
    (broken / "config.json").write_text('{"model_type": "mask2former_video",')
    assert predict(video, broken, tmp_path / "out") == 2
    assert the_error(capsys).startswith(f"error: {broken}: cannot load the model: ")


def test_predict_missing_input(model_dir, tmp_path, capsys):
    assert predict(tmp_path / "missing.mp4", model_dir, tmp_path / "out") == 2
    assert the_error(capsys) == f"error: {tmp_path / 'missing.mp4'}: no such video file or folder."


def test_predict_overlap_not_below_the_clip_length(model_dir, video, tmp_path, capsys):
    assert predict(video, model_dir, tmp_path / "out", "--clip-length", "4") == 2
    assert the_error(capsys) == "error: --clip-overlap 8: must be less than --clip-length (4)"


@pytest.mark.parametrize(
    "option, value",
    [
        ("--top-k", "-1"),
        ("--top-k", "0"),
        ("--clip-length", "0"),
        ("--clip-overlap", "-1"),
        ("--long-video-threshold", "-1"),
        ("--frame-stride", "0"),
        ("--max-frames", "0"),
        ("--sheet-frames", "0"),
        ("--fps", "0"),
        ("--fps", "inf"),
        ("--threshold", "nan"),
        ("--threshold", "1e400"),
        ("--threshold", "-0.1"),
        ("--overlay-threshold", "2"),
        ("--top-k", "two"),
    ],
)
def test_predict_numeric_options_are_checked_by_argparse(option, value, model_dir, video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict(video, model_dir, tmp_path / "out", f"{option}={value}")
    assert exit_info.value.code == 2
    assert f"error: argument {option}: {value!r}: must be " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------- evaluate


@pytest.fixture
def ground_truth(tmp_path):
    path = tmp_path / "gt.json"
    video = {"id": 1, "height": 4, "width": 4, "length": 1}
    path.write_text(json.dumps({"videos": [video], "categories": [{"id": 1, "name": "c"}], "annotations": []}))
    return path


def evaluate(ground_truth, results, *options) -> int:
    return cli.main(["evaluate", "--gt", str(ground_truth), "--results", str(results), *options])


def test_evaluate_infinite_score(ground_truth, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text('[{"video_id": 1, "category_id": 1, "score": 1e400, "segmentations": [null]}]')  # inf
    assert evaluate(ground_truth, results) == 2
    line = the_error(capsys)
    assert line.startswith(f"error: {results}: results[0] ") and line.endswith("'score' must be a finite number")


def test_evaluate_json_into_a_missing_folder(ground_truth, tmp_path, capsys):
    results = tmp_path / "results.json"
    results.write_text("[]")
    out = tmp_path / "missing" / "out.json"
    assert evaluate(ground_truth, results, "--json", str(out)) == 2
    assert the_error(capsys) == f"error: {out}: the folder {out.parent} does not exist"


def test_evaluate_json_that_is_a_folder(ground_truth, tmp_path, capsys):
    assert evaluate(ground_truth, ground_truth, "--json", str(tmp_path)) == 2
    assert the_error(capsys) == f"error: {tmp_path}: is a folder; --json needs a file name"


def test_evaluate_missing_ground_truth(tmp_path, capsys):
    assert evaluate(tmp_path / "gt.json", tmp_path / "results.json") == 2
    assert the_error(capsys) == f"error: {tmp_path / 'gt.json'}: No such file or directory"


# ------------------------------------------------------------------------------------- demo and make-synthetic


def test_demo_into_a_file(tmp_path, capsys):
    output = tmp_path / "demo"
    output.write_text("")
    assert cli.main(["demo", "--output", str(output), "--no-progress"]) == 2
    assert the_error(capsys) == f"error: {output}: is a file, not a folder"


def test_make_synthetic_into_a_file(tmp_path, capsys):
    output = tmp_path / "data"
    output.write_text("")
    argv = ["make-synthetic", "--output", str(output), "--videos", "1", "--frames", "1", "--classes", "1"]
    assert cli.main([*argv, "--no-progress"]) == 2
    assert the_error(capsys) == f"error: {output}: is a file, not a folder"


def test_make_synthetic_more_classes_than_the_generator_has(tmp_path, capsys):
    argv = ["make-synthetic", "--output", str(tmp_path / "data"), "--videos", "1", "--frames", "1", "--classes", "99"]
    assert cli.main(argv) == 2
    assert the_error(capsys).startswith("error: --classes 99: num_classes must be between 1 and ")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--frames", "0"],
        ["demo", "--height", "8"],
        ["demo", "--video-index", "-1"],
        ["demo", "--threshold", "nan"],
        ["make-synthetic", "--videos", "0"],
        ["make-synthetic", "--frames", "-2"],
        ["make-synthetic", "--classes", "0"],
        ["make-synthetic", "--width", "15"],
        ["make-synthetic", "--seed", "-1"],
        ["make-synthetic", "--valid-fraction", "1"],
        ["make-synthetic", "--max-objects", "0"],
        ["make-synthetic", "--jpeg-quality", "101"],
    ],
)
def test_demo_and_make_synthetic_numeric_options_are_checked_by_argparse(argv, tmp_path, capsys):
    required = {"make-synthetic": ["--videos", "1", "--frames", "1", "--classes", "1"], "demo": []}[argv[0]]
    with pytest.raises(SystemExit) as exit_info:
        cli.main([argv[0], "--output", str(tmp_path / "out"), *required, *argv[1:]])
    assert exit_info.value.code == 2
    assert f"error: argument {argv[1]}: {argv[2]!r}: must be " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
