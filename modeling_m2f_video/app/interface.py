"""The web app's page: upload a video (or pick the example), choose top-k, threshold and mode, run it, and see the
overlay video, the contact sheet and a table of the instances, each of which can be shown or hidden on the overlay;
`results.json` and the overlay can be downloaded.

[`build_app`] makes the Gradio `Blocks`; [`VideoSegmentationApp`] holds what the handlers share (the model, loaded
on the first run, and a work folder). Every error of a run (not a video, a video that is too long, a model folder
that does not load) is shown in the page as a message; the traceback of an unexpected one goes to the server's log
only. The page needs no network: no usage reports (`analytics_enabled=False`) and the theme's fonts ship with Gradio.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import UserInputError
from .defaults import DEFAULT_MAX_FRAMES, DEFAULT_THRESHOLD, DEFAULT_TOP_K
from .results import (
    TABLE_HEADERS,
    Segmentation,
    default_shown,
    draw,
    instance_choices,
    instance_rows,
    segment_upload,
    write_results,
)

logger = logging.getLogger(__name__)

TITLE = "Mask2Former video instance segmentation"
# A handler's `gr.Progress` default is the sign for Gradio to pass the run's progress bar; it follows tqdm bars
# (those of clip-by-clip inference) too.
PROGRESS = gr.Progress(track_tqdm=True)
VIDEO_HEIGHT = 320  # pixels: the players leave room for the contact sheet and the table
MAX_TOP_K = 100
# (shown name, the pipeline's `mode`): the API takes the values of `m2f-video predict --mode`.
MODE_CHOICES = [("auto", "auto"), ("whole video", "whole"), ("clip by clip", "clip")]


@dataclass
class Run:
    """What one run keeps for redrawing (in the browser session's state): the segmentation and its results.json."""

    segmentation: Segmentation
    results: Path


class VideoSegmentationApp:
    """The state the page's handlers share: how to load the model (once, on the first run), the frame limit, and a
    work folder for the files each run writes (removed when the app object is garbage-collected or at exit).

    Args:
        load_segmenter: returns the `video-instance-segmentation` pipeline; a `UserInputError` (or `ValueError`) it
            raises is shown in the page.
        max_frames: longest video accepted, in frames.
    """

    def __init__(self, load_segmenter: Callable[[], Any], max_frames: int = DEFAULT_MAX_FRAMES):
        self._load_segmenter = load_segmenter
        self._segmenter = None
        self._lock = threading.Lock()
        self.max_frames = max_frames
        self._work = tempfile.TemporaryDirectory(prefix="m2f-video-app-")

    def segmenter(self) -> Any:
        """The pipeline, loaded on first use (so that the page is up at once, and a bad model is a message there)."""
        with self._lock:
            if self._segmenter is None:
                self._segmenter = self._load_segmenter()
            return self._segmenter

    def segment(
        self,
        video: str | None,
        top_k: float,
        threshold: float,
        mode: str,
        progress: gr.Progress = PROGRESS,
    ) -> tuple:
        """The run button: segment the video and fill the page (status, overlay, sheet, table, show / hide boxes,
        downloads, and the run kept for redrawing)."""
        if not video:
            return self._failed("Upload a video, or pick the example video, first.")
        try:
            progress(0.0, desc="loading the model")
            segmenter = self.segmenter()
            progress(0.1, desc="segmenting")
            segmentation = segment_upload(
                segmenter, video, self.max_frames, int(top_k), float(threshold), mode, progress=True
            )
            progress(0.7, desc="drawing")
            shown = default_shown(segmentation)
            folder = self._run_folder()
            overlay, sheet = draw(segmentation, shown, folder)
            results = write_results(segmentation, folder)
        except Exception as error:  # every failure is a message in the page, never a traceback there
            return self._failed(_message(error))
        choices = gr.CheckboxGroup(choices=instance_choices(segmentation), value=shown)
        rows = instance_rows(segmentation)
        run = Run(segmentation, results)
        files = [str(results), str(overlay)]
        return _status(segmentation, shown), str(overlay), str(sheet), rows, choices, files, run

    def redraw(self, run: Run | None, shown: list[int]) -> tuple:
        """The show / hide boxes: draw the overlay and the contact sheet again with the instances ticked."""
        if run is None:
            return _error_text("Run the model on a video first."), None, None, None
        try:
            overlay, sheet = draw(run.segmentation, shown, self._run_folder())
        except Exception as error:  # as in `segment`
            return _error_text(_message(error)), None, None, None
        return _status(run.segmentation, shown), str(overlay), str(sheet), [str(run.results), str(overlay)]

    def _run_folder(self) -> Path:
        """A new folder for one run's files, so that files shown in another browser tab are never overwritten."""
        return Path(tempfile.mkdtemp(dir=self._work.name))

    @staticmethod
    def _failed(message: str) -> tuple:
        """What the run button's outputs show after an error: the message, and no results."""
        return _error_text(message), None, None, [], gr.CheckboxGroup(choices=[], value=[]), None, None


def _error_text(message: str) -> str:
    return f"**Error:** {message}"


def _message(error: Exception) -> str:
    """What the page says about an error: the message of bad input, and the type too for anything else (whose
    traceback goes to the server's log)."""
    if isinstance(error, (UserInputError, ValueError)):
        return str(error)
    logger.exception("the run failed")
    return f"{type(error).__name__}: {error} (the server's log has the details)"


def _status(segmentation: Segmentation, shown: list[int]) -> str:
    """The line above the results: how many instances were found and how many are drawn."""
    found = len(segmentation.instances)
    return (
        f"{segmentation.video.name}: {found} instance{'s' * (found != 1)} in {segmentation.source.num_frames} frames, "
        f"{len(shown)} shown on the overlay."
    )


def build_app(
    load_segmenter: Callable[[], Any],
    example_video: str | Path | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    title: str = TITLE,
) -> gr.Blocks:
    """The Gradio page of the app.

    Args:
        load_segmenter: returns the `video-instance-segmentation` pipeline (called once, on the first run).
        example_video: a video offered as the example to pick.
        max_frames: longest video accepted, in frames.
        title: the page's title and heading.

    The run is the API endpoint `/segment` (video, top_k, threshold, mode as `m2f-video predict --mode` takes it ->
    status, overlay, contact sheet, table, shown instances, downloads), which `gradio_client` calls as a script
    would; `/redraw` (the indices of the instances to show) draws the last run of the same session again.
    """
    app = VideoSegmentationApp(load_segmenter, max_frames)
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"# {title}\nUpload a video of at most {max_frames} frames, or pick the example, then run.")
        last_run = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.Video(label="Video", sources=["upload"], height=VIDEO_HEIGHT, elem_id="input-video")
                if example_video is not None:
                    gr.Examples([[str(example_video)]], inputs=[video], label="Example video")
                top_k = gr.Slider(1, MAX_TOP_K, value=DEFAULT_TOP_K, step=1, label="Top-k (most instances)")
                threshold = gr.Slider(0.0, 1.0, value=DEFAULT_THRESHOLD, step=0.05, label="Score threshold")
                mode = gr.Radio(MODE_CHOICES, value="auto", label="Mode", info="auto: clip by clip for long videos")
                run = gr.Button("Segment", variant="primary", elem_id="run-button")
            with gr.Column(scale=2):
                status = gr.Markdown(elem_id="status")
                overlay = gr.Video(label="Overlay", interactive=False, height=VIDEO_HEIGHT, elem_id="overlay-video")
                sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, elem_id="contact-sheet")
                table = gr.Dataframe(
                    headers=TABLE_HEADERS, label="Instances", interactive=False, elem_id="instances", type="array"
                )
                shown = gr.CheckboxGroup(label="Shown on the overlay", choices=[], elem_id="shown")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        run.click(
            app.segment,
            inputs=[video, top_k, threshold, mode],
            outputs=[status, overlay, sheet, table, shown, downloads, last_run],
            api_name="segment",
        )
        shown.input(
            app.redraw, inputs=[last_run, shown], outputs=[status, overlay, sheet, downloads], api_name="redraw"
        )
    return blocks
