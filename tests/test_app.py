"""`m2f-video app`: the web app through `gradio_client` (the API a script would use), its handlers, the command, and
the Hugging Face Space files that `export-hub` adds. The browser test is `test_app_browser.py`."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from modeling_m2f_video import cli
from modeling_m2f_video.app import local
from modeling_m2f_video.app.interface import VideoSegmentationApp
from modeling_m2f_video.app.results import frame_ranges
from modeling_m2f_video.app.space import space_file_names
from modeling_m2f_video.batch_prediction import build_pipeline, predict_videos
from modeling_m2f_video.demo import DEMO_MODEL_DIR, demo_video
from modeling_m2f_video.processing.synthetic import category_names
from modeling_m2f_video.processing.video_io import open_video, write_video

MAX_FRAMES = 30  # the demo video has 24 frames; a longer one is refused
# Gradio's own use of pandas 3 (not the app's).
GRADIO_PANDAS_WARNINGS = [
    pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
pytestmark = GRADIO_PANDAS_WARNINGS
DEMO_CLASSES = 3  # the demo model's classes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_app(model: str = "demo", max_frames: int = MAX_FRAMES):
    """The app served on 127.0.0.1 while the block runs; yields its address."""
    blocks = local.launch_app(model, host="127.0.0.1", port=free_port(), max_frames=max_frames, block=False)
    try:
        yield blocks.local_url
    finally:
        blocks.close()


def demo_object_labels() -> set[str]:
    """The class names of the objects of the app's example video (the demo's generated video)."""
    truth = demo_video(
        None,
        num_frames=local.EXAMPLE_FRAMES,
        height=local.EXAMPLE_HEIGHT,
        width=local.EXAMPLE_WIDTH,
        num_classes=DEMO_CLASSES,
    )
    names = category_names(DEMO_CLASSES)
    return {names[label] for label in truth.labels}


def not_a_video(folder: Path) -> Path:
    path = folder / "not_a_video.mp4"
    path.write_text("this is text, not a video\n")
    return path


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    return local.write_example_video(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def client():
    with running_app() as url:
        yield Client(url, verbose=False)


def segment(client: Client, video: Path, top_k: int = 10, threshold: float = 0.5, mode: str = "auto") -> dict:
    names = ("status", "overlay", "sheet", "table", "shown", "downloads")
    return dict(zip(names, client.predict(handle_file(str(video)), top_k, threshold, mode, api_name="/segment")))


def test_the_api_segments_the_demo_video_as_predict_does(client, demo_file, tmp_path):
    result = segment(client, demo_file)
    rows = result["table"]["data"]
    assert result["status"].startswith(f"demo_video.mp4: {len(rows)} instances in 24 frames")
    assert demo_object_labels() <= {row[1] for row in rows}
    assert [row[0] for row in rows] == list(range(1, len(rows) + 1))
    assert all(row[3] != "none" and row[4] > 0 for row in rows)
    assert open_video(result["overlay"]).num_frames == 24
    assert Path(result["sheet"]).stat().st_size > 0
    assert [value for _, value in result["shown"]["choices"]] == list(range(len(rows)))

    results_file, overlay_file = (Path(path) for path in result["downloads"])
    assert results_file.name == "results.json" and overlay_file.name == "demo_video_overlay.mp4"
    summary = predict_videos(
        [demo_file], model="demo", output=tmp_path / "predict", threshold=0.5, pictures=False, progress=False
    )
    assert json.loads(results_file.read_text()) == summary["results"]


def test_the_mode_and_top_k_reach_the_pipeline(client, demo_file):
    result = segment(client, demo_file, top_k=1, threshold=0.0, mode="clip")
    assert len(result["table"]["data"]) == 1
    assert result["status"].startswith("demo_video.mp4: 1 instance in 24 frames, 1 shown")


def test_hiding_instances_redraws_the_overlay_without_them(client, demo_file):
    shown = segment(client, demo_file)
    status, overlay, sheet, downloads = client.predict([0], api_name="/redraw")
    assert status.endswith("1 shown on the overlay.")
    assert open_video(overlay).num_frames == 24
    first_frame = next(open_video(overlay).frames())
    assert not np.array_equal(first_frame, next(open_video(shown["overlay"]).frames()))
    assert Path(downloads[0]).name == "results.json"


def test_a_file_that_is_not_a_video_is_a_message(client, tmp_path):
    result = segment(client, not_a_video(tmp_path))
    assert result["status"].startswith("**Error:** not_a_video.mp4: not a readable video file")
    assert str(tmp_path) not in result["status"]  # the upload folder is not shown
    assert result["overlay"] is None and result["table"]["data"] in ([], [[]])


def test_a_video_that_is_too_long_is_a_message(client, demo_file, tmp_path):
    frames = open_video(demo_file).read()
    long_video = write_video(tmp_path / "long.mp4", np.concatenate([frames, frames]))
    result = segment(client, long_video)
    assert result["status"].startswith("**Error:** long.mp4: the video is too long (48 frames)")
    assert f"at most {MAX_FRAMES} frames" in result["status"]


def test_a_model_folder_that_does_not_load_is_a_message(demo_file, tmp_path):
    broken = tmp_path / "broken_model"
    broken.mkdir()
    for name in ("config.json", "video_preprocessor_config.json"):
        (broken / name).write_bytes((DEMO_MODEL_DIR / name).read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    app = VideoSegmentationApp(lambda: build_pipeline(str(broken), "cpu", None, False))
    status, *outputs = app.segment(str(demo_file), 10, 0.5, "auto", progress=lambda *args, **kwargs: None)
    assert status.startswith(f"**Error:** {broken}: cannot load the model")
    assert outputs[0] is None


def test_frame_ranges():
    assert frame_ranges(np.array([0, 1, 2, 5, 7, 8])) == "0-2, 5, 7-8"
    assert frame_ranges(np.array([3])) == "3"
    assert frame_ranges(np.array([], dtype=int)) == "none"


# ----------------------------------------------------------------------------------------------- the command


def test_the_command_starts_the_app_with_its_options(monkeypatch):
    calls = []
    monkeypatch.setattr(local, "launch_app", lambda *args, **kwargs: calls.append((args, kwargs)))
    argv = ["app", "--model", "demo", "--host", "0.0.0.0", "--port", "7999", "--max-frames", "50"]
    assert cli.main(argv) == 0
    assert calls == [
        (("demo",), {"host": "0.0.0.0", "port": 7999, "device": None, "trust_remote_code": False, "max_frames": 50})
    ]


def test_the_command_reports_a_missing_model_folder(tmp_path, capsys):
    assert cli.main(["app", "--model", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'missing'}: no such model folder")


# ----------------------------------------------------------------------------------------------- the Space


# Runs in a fresh interpreter that cannot import modeling_m2f_video: serves the Space's app.py and segments its
# example video through gradio_client, printing the status and the table.
SPACE_SCRIPT = r"""
import importlib.util, json, sys
from importlib.abc import MetaPathFinder

class BlockPackage(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "modeling_m2f_video":
            raise ImportError("modeling_m2f_video must not be imported here")

sys.meta_path.insert(0, BlockPackage())
folder, port = sys.argv[1], int(sys.argv[2])
spec = importlib.util.spec_from_file_location("space_app", f"{folder}/app.py")
app = importlib.util.module_from_spec(spec)
spec.loader.exec_module(app)
app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
from gradio_client import Client, handle_file
status, overlay, sheet, table, shown, downloads = Client(app.demo.local_url, verbose=False).predict(
    handle_file(f"{folder}/demo_video.mp4"), 10, 0.5, "auto", api_name="/segment"
)
app.demo.close()
assert not [name for name in sys.modules if name.partition(".")[0] == "modeling_m2f_video"]
print(json.dumps({"status": status, "labels": [row[1] for row in table["data"]]}))
"""


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory) -> Path:
    """The demo model exported with `export-hub --space`."""
    folder = tmp_path_factory.mktemp("space") / "demo"
    assert cli.main(["export-hub", str(DEMO_MODEL_DIR), "--output", str(folder), "--space"]) == 0
    return folder


def test_space_files_are_written(space_dir):
    assert space_file_names() <= {path.name for path in space_dir.iterdir()}
    requirements = (space_dir / "requirements.txt").read_text().split()
    names = {line.split("<")[0].split(">")[0].split("=")[0] for line in requirements}
    assert {"gradio", "torch", "transformers", "av", "pillow", "pycocotools", "numpy"} <= names
    card = (space_dir / "README.md").read_text()
    assert "\nsdk: gradio\n" in card and "\napp_file: app.py\n" in card
    assert "custom_code" in card  # the model card's own metadata is kept


def test_the_space_runs_the_app_without_the_package(space_dir, tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    command = [sys.executable, "-c", SPACE_SCRIPT, str(space_dir), str(free_port())]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["status"].startswith("demo_video.mp4:")
    assert demo_object_labels() <= set(output["labels"])
