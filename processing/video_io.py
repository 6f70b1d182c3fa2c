"""Reading videos for inference (files through PyAV, folders of frames, lists of images, arrays) and writing them.

Every input becomes a `VideoSource`: its name, frame count and frame size are known up front (so that the
pipeline can choose between whole-video and clip-by-clip inference before decoding anything), and its frames
are produced lazily, one (H, W, 3) uint8 array at a time, so a long video file never has to sit in memory.
Every problem with an input raises a `ValueError` that names the file (or the input) it comes from.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import PIL.Image
import torch

VIDEO_EXTENSIONS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class VideoSource:
    """One input video, ready to be read frame by frame.

    Attributes:
        name: how the video is called in messages and output file names (a file stem or "video_<i>").
        num_frames: frames that `frames()` yields (after the frame stride and the frame limit).
        height, width: size of every frame.
        origin: the file or folder the video comes from, or a short description of an in-memory input.
        read_frames: yields the selected frames as (H, W, 3) uint8 arrays.
    """

    name: str
    num_frames: int
    height: int
    width: int
    origin: str
    read_frames: Callable[[], Iterator[np.ndarray]]

    def frames(self) -> Iterator[np.ndarray]:
        """The frames, one (H, W, 3) uint8 array at a time, decoded only when asked for."""
        count = 0
        for frame in self.read_frames():
            if frame.shape != (self.height, self.width, 3):
                raise ValueError(
                    f"{self.origin}: frame {count} has size {frame.shape[:2]}, but the video's frames are "
                    f"{(self.height, self.width)}; all frames of a video must have one size."
                )
            count += 1
            yield frame
        if count != self.num_frames:
            raise ValueError(
                f"{self.origin}: expected {self.num_frames} frames but could decode only {count}; "
                "the file is truncated or damaged."
            )

    def read(self) -> np.ndarray:
        """All frames as one (T, H, W, 3) uint8 array."""
        return np.stack(list(self.frames()))


def open_video(
    video: Any, frame_stride: int = 1, max_frames: int | None = None, name: str | None = None
) -> VideoSource:
    """Wrap any supported video input in a `VideoSource`, checking it without decoding every frame.

    Args:
        video: a video file path (anything PyAV reads: mp4, webm, avi, mov, ...), a folder of frame images
            (read in natural file name order), a list of PIL images or (H, W, 3) arrays, or a (T, H, W, 3)
            uint8 array or tensor.
        frame_stride: keep every `frame_stride`-th frame, starting with the first.
        max_frames: keep at most this many frames (after the stride).
        name: the name to give the video; defaults to the file or folder name, or "video".
    """
    if frame_stride < 1:
        raise ValueError(f"frame_stride must be at least 1, got {frame_stride}.")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1 (or None), got {max_frames}.")
    if isinstance(video, (str, os.PathLike)):
        path = Path(video)
        if path.is_dir():
            return _open_frame_folder(path, frame_stride, max_frames, name)
        if path.is_file():
            return _open_video_file(path, frame_stride, max_frames, name)
        raise ValueError(f"{path}: no such video file or frame folder.")
    return _open_in_memory(video, frame_stride, max_frames, name or "video")


def is_single_video(video: Any) -> bool:
    """Whether `video` is one video rather than a batch: a path, a 4-D array, or a list of frames."""
    if isinstance(video, (str, os.PathLike)):
        return True
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return video.ndim == 4
    if isinstance(video, (list, tuple)) and len(video) > 0:
        first = video[0]
        return isinstance(first, PIL.Image.Image) or (
            isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim == 3
        )
    return False


def list_videos(path: str | os.PathLike) -> list[Path]:
    """The inputs named by `path`: the video files in a folder (sorted), a folder of frames, or one file.

    A folder that holds video files is a folder of videos; a folder that holds only images is one video.
    A text file (`.txt`) lists one video path per line (relative paths are read from the list's folder).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".txt":
        lines = [line.strip() for line in path.read_text().splitlines()]
        return [(path.parent / line) for line in lines if line and not line.startswith("#")]
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if videos:
            return sorted(videos, key=lambda p: _natural_key(p.name))
        subfolders = sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))
        if subfolders and not _image_files(path):
            return subfolders
    if not path.exists():
        raise ValueError(f"{path}: no such video file or folder.")
    return [path]


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float = 10.0) -> Path:
    """Write (H, W, 3) uint8 frames to a video file with PyAV; the codec follows the extension.

    mp4/mov use H.264 (yuv420p, so odd sizes are padded by one pixel at the bottom/right), webm VP9,
    avi MPEG-4 part 2.
    """
    path = Path(path)
    codec = {".webm": "libvpx-vp9", ".avi": "mpeg4"}.get(path.suffix.lower(), "libx264")
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = container.add_stream(codec, rate=_fraction(fps))
                stream.height, stream.width = frame.shape[0] + frame.shape[0] % 2, frame.shape[1] + frame.shape[1] % 2
                stream.pix_fmt = "yuv420p"
            frame = _pad_to(frame, stream.height, stream.width)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        if stream is None:
            raise ValueError(f"{path}: cannot write a video with zero frames.")
        container.mux(stream.encode())
    return path


# ----------------------------------------------------------------------------------------------- sources


def _open_video_file(path: Path, frame_stride: int, max_frames: int | None, name: str | None) -> VideoSource:
    """A video file: the header and packet count are read now, the frames decoded when iterated."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: the file has no video stream.")
            stream = container.streams.video[0]
            height, width = stream.codec_context.height, stream.codec_context.width
            expected, tolerance = _expected_frame_count(container, stream)
            total = sum(1 for packet in container.demux(stream) if packet.size > 0)
    except av.FFmpegError as error:
        raise ValueError(f"{path}: not a readable video file ({error}).") from error
    if total == 0 or height == 0 or width == 0:
        raise ValueError(f"{path}: the video has zero frames.")
    if total < expected - tolerance:
        raise ValueError(
            f"{path}: the header announces {expected} frames but only {total} are present; is it truncated?"
        )
    indices = _selected_indices(total, frame_stride, max_frames)

    def read_frames() -> Iterator[np.ndarray]:
        wanted, last = set(indices), indices[-1]
        try:
            with av.open(str(path)) as container:
                for index, frame in enumerate(container.decode(video=0)):
                    if index in wanted:
                        yield frame.to_ndarray(format="rgb24")
                    if index >= last:
                        return
        except av.FFmpegError as error:
            raise ValueError(f"{path}: the video could not be decoded ({error}); is it truncated?") from error

    return VideoSource(name or path.stem, len(indices), height, width, str(path), read_frames)


def _open_frame_folder(path: Path, frame_stride: int, max_frames: int | None, name: str | None) -> VideoSource:
    """A folder of frame images, in natural name order; the first frame sets the size."""
    files = _image_files(path)
    if not files:
        raise ValueError(f"{path}: the folder holds no frame images ({', '.join(IMAGE_EXTENSIONS)}).")
    files = [files[i] for i in _selected_indices(len(files), frame_stride, max_frames)]
    height, width = _load_image(files[0]).shape[:2]

    def read_frames() -> Iterator[np.ndarray]:
        for file in files:
            frame = _load_image(file)
            if frame.shape[:2] != (height, width):
                raise ValueError(
                    f"{file}: frame size {frame.shape[:2]} differs from the first frame's {(height, width)} "
                    f"({files[0].name}); all frames of a video must have one size."
                )
            yield frame

    return VideoSource(name or path.name, len(files), height, width, str(path), read_frames)


def _open_in_memory(video: Any, frame_stride: int, max_frames: int | None, name: str) -> VideoSource:
    """A (T, H, W, 3) array or tensor, or a list of PIL images / (H, W, 3) arrays."""
    if isinstance(video, (list, tuple)):
        frames = [_frame_array(frame, f"{name}: frame {index}") for index, frame in enumerate(video)]
    elif isinstance(video, (np.ndarray, torch.Tensor)):
        if video.ndim != 4 or video.shape[-1] != 3:
            raise ValueError(f"{name}: a video array must have shape (T, H, W, 3); got {tuple(video.shape)}.")
        frames = [_frame_array(frame, f"{name}: frame {index}") for index, frame in enumerate(video)]
    else:
        raise ValueError(
            f"{name}: unsupported video input of type {type(video).__name__}; expected a file path, a folder of "
            "frames, a list of PIL images or a (T, H, W, 3) uint8 array."
        )
    if not frames:
        raise ValueError(f"{name}: the video has zero frames.")
    height, width = frames[0].shape[:2]
    for index, frame in enumerate(frames):
        if frame.shape[:2] != (height, width):
            raise ValueError(
                f"{name}: frame {index} has size {frame.shape[:2]} but frame 0 has {(height, width)}; "
                "all frames of a video must have one size."
            )
    frames = [frames[i] for i in _selected_indices(len(frames), frame_stride, max_frames)]
    return VideoSource(name, len(frames), height, width, name, lambda: iter(frames))


# ----------------------------------------------------------------------------------------------- helpers


def _expected_frame_count(container: av.container.InputContainer, stream: av.VideoStream) -> tuple[int, int]:
    """Frames the header announces, and how far below that a complete file may fall.

    The frame count is exact where the container stores it (mp4, mov, avi); otherwise (webm) it is estimated
    from the duration and the frame rate, to within one frame. (0, 0) when the header says nothing.
    """
    if stream.frames > 0:
        return stream.frames, 0
    if container.duration and stream.average_rate:
        return round(container.duration / av.time_base * float(stream.average_rate)), 1
    return 0, 0


def _selected_indices(total: int, frame_stride: int, max_frames: int | None) -> list[int]:
    return list(range(0, total, frame_stride))[:max_frames]


def _frame_array(frame: Any, where: str) -> np.ndarray:
    """One frame as an (H, W, 3) uint8 array (PIL images are converted to RGB)."""
    if isinstance(frame, PIL.Image.Image):
        return np.asarray(frame.convert("RGB"))
    if isinstance(frame, torch.Tensor):
        frame = frame.cpu().numpy()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{where}: expected a PIL image or an (H, W, 3) array; got {_describe(frame)}.")
    if frame.dtype != np.uint8:
        raise ValueError(f"{where}: expected uint8 pixel values (0-255); got dtype {frame.dtype}.")
    return frame


def _describe(obj: Any) -> str:
    return f"shape {tuple(obj.shape)}" if hasattr(obj, "shape") else type(obj).__name__


def _load_image(file: Path) -> np.ndarray:
    try:
        with PIL.Image.open(file) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, PIL.UnidentifiedImageError) as error:
        raise ValueError(f"{file}: not a readable image ({error}).") from error


def _image_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _natural_key(name: str) -> list[Any]:
    """Sort key that puts "frame2" before "frame10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def _pad_to(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad a frame at the bottom/right by repeating its edge, to the even size H.264 needs."""
    pad_h, pad_w = height - frame.shape[0], width - frame.shape[1]
    if pad_h == 0 and pad_w == 0:
        return frame
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
