"""Start the web app on a model folder, a Hub id or the shipped demo model (what `m2f-video app` runs).

The model is loaded with the pipeline builder of `m2f-video predict` (`batch_prediction`), so a model that
`predict` refuses is refused here with the same message, shown in the page. The example video is the demo's
generated video, written into `<temp>/m2f-video-app/` when the app starts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..batch_prediction import build_pipeline
from ..configuration import Mask2FormerVideoConfig
from ..demo import DEMO_MODEL_NAME, DEMO_VIDEO_NAME, demo_video, resolve_model_path
from ..processing.video_io import write_video
from .defaults import DEFAULT_MAX_FRAMES
from .interface import build_app

# The demo's default video (`m2f-video demo`): what the demo model was trained on.
EXAMPLE_FRAMES, EXAMPLE_HEIGHT, EXAMPLE_WIDTH, EXAMPLE_FPS = 24, 96, 128, 10.0


def write_example_video(folder: str | Path) -> Path:
    """Write the demo's generated video (the first with several objects) to `folder/demo_video.mp4`.

    It is drawn with the demo model's classes, so that the demo model finds its objects.
    """
    num_classes = Mask2FormerVideoConfig.from_pretrained(resolve_model_path(DEMO_MODEL_NAME)).num_labels
    video = demo_video(
        None, num_frames=EXAMPLE_FRAMES, height=EXAMPLE_HEIGHT, width=EXAMPLE_WIDTH, num_classes=num_classes
    )
    return write_video(Path(folder) / f"{DEMO_VIDEO_NAME}.mp4", video.frames, fps=EXAMPLE_FPS)


def default_device() -> str:
    """The accelerator when there is one (`cuda`, `mps`, ...), else `cpu`."""
    import torch

    return torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"


def launch_app(
    model: str = DEMO_MODEL_NAME,
    host: str = "127.0.0.1",
    port: int | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    max_frames: int = DEFAULT_MAX_FRAMES,
    block: bool = True,
):
    """Serve the app on `host:port` (a free port from 7860 on when None) and print its address.

    A model name or folder that cannot be a model (`resolve_model_path`) is a `UserInputError` before anything
    starts; a folder that fails to load is a message in the page at the first run. With `block` it serves until
    Ctrl-C; otherwise it returns the running Gradio `Blocks` (`.local_url`; `.close()` stops it).
    """
    model_path = resolve_model_path(model)
    device = device or default_device()
    work = Path(tempfile.gettempdir()) / "m2f-video-app"
    work.mkdir(exist_ok=True)
    blocks = build_app(
        lambda: build_pipeline(model_path, device, None, trust_remote_code),
        example_video=write_example_video(work),
        max_frames=max_frames,
    )
    blocks.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, allowed_paths=[str(work)])
    print(f"m2f-video app: {model_path} on {device}; open {blocks.local_url} in a browser (Ctrl-C stops it)")
    if block:
        blocks.block_thread()
    return blocks
