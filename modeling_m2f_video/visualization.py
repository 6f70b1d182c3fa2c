"""Pictures of predictions: frames with each instance in its own colour, an overlay video and a contact sheet.

Instances are what the pipeline returns: `{"score", "label", "masks"}` with one mask per frame, as a (H, W)
bool array or a compressed RLE. Masks are decoded one frame at a time, so a long video is drawn in bounded
memory.
"""

from __future__ import annotations

import colorsys
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .processing.video_io import VideoSource, write_video
from .ytvis.rle import decode_rle

MASK_OPACITY = 0.5
_GOLDEN_RATIO = 0.618033988749895


def instance_colours(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB colours, saturated and far apart in hue (golden-ratio steps)."""
    hues = (np.arange(count) * _GOLDEN_RATIO) % 1.0
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], dtype=np.uint8)


def caption(instance: dict) -> str:
    """The text drawn next to an instance: its label and score."""
    return f"{instance['label']} {instance['score']:.2f}"


def frame_mask(instance: dict, frame: int) -> np.ndarray:
    """Instance's (H, W) bool mask on one frame, decoding an RLE if needed."""
    mask = instance["masks"][frame]
    return decode_rle(mask) if isinstance(mask, dict) else np.asarray(mask, dtype=bool)


def select_for_display(instances: Sequence[dict], min_score: float = 0.5, max_overlap: float = 0.8) -> list[dict]:
    """The instances worth drawing: scoring at least `min_score`, and not a copy of a better one.

    Mask2Former keeps the top (query, class) pairs, so one object often appears several times, once per plausible
    class, with the same mask. In pictures only the best of these is drawn: an instance whose mask volume
    overlaps a better-scoring shown one with IoU above `max_overlap` is left out. Results files keep everything.
    """
    candidates = sorted((i for i in instances if i["score"] >= min_score), key=lambda i: -i["score"])
    if len(candidates) < 2:
        return candidates
    num_frames = len(candidates[0]["masks"])
    intersections = np.zeros((len(candidates), len(candidates)))
    areas = np.zeros(len(candidates))
    for frame in range(num_frames):
        masks = np.stack([frame_mask(instance, frame).ravel() for instance in candidates]).astype(np.float32)
        intersections += masks @ masks.T  # (K, K) overlapping pixels
        areas += masks.sum(1)
    ious = intersections / np.maximum(areas[:, None] + areas[None, :] - intersections, 1)
    shown: list[int] = []
    for index in range(len(candidates)):
        if all(ious[index, kept] <= max_overlap for kept in shown):
            shown.append(index)
    return [candidates[index] for index in shown]


def draw_instances(
    frame: np.ndarray, masks: Sequence[np.ndarray], colours: np.ndarray, captions: Sequence[str]
) -> np.ndarray:
    """One (H, W, 3) uint8 frame with each mask tinted in its colour, outlined, and captioned at its top left.

    Instances come best first; they are drawn in reverse, so that a better instance is drawn over a worse one where
    they overlap, masks and captions alike (captions after all masks, so that no mask covers a caption).
    """
    canvas = frame.astype(np.float32)
    for mask, colour in zip(reversed(masks), reversed(colours)):
        canvas[mask] = (1 - MASK_OPACITY) * canvas[mask] + MASK_OPACITY * colour
        canvas[_outline(mask)] = colour
    image = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for mask, colour, text in zip(reversed(masks), reversed(colours), reversed(captions)):
        rows, cols = np.nonzero(mask)
        if len(rows):
            _draw_label(draw, font, (int(cols.min()), int(rows.min())), text, tuple(int(c) for c in colour))
    return np.asarray(image)


def overlay_frames(frames: Iterable[np.ndarray], instances: Sequence[dict]) -> Iterator[np.ndarray]:
    """The video's frames with the instances drawn on them, one frame at a time."""
    colours = instance_colours(len(instances))
    captions = [caption(instance) for instance in instances]
    for index, frame in enumerate(frames):
        masks = [frame_mask(instance, index) for instance in instances]
        yield draw_instances(frame, masks, colours, captions)


def write_overlay_video(
    path: str | os.PathLike, source: VideoSource, instances: Sequence[dict], fps: float = 10.0, progress: bool = False
) -> Path:
    """Write the overlay video (mp4 with H.264, through PyAV) of a video and its instances."""
    frames = tqdm(source.frames(), total=source.num_frames, disable=not progress, desc=f"overlay {source.name}")
    return write_video(path, overlay_frames(frames, instances), fps=fps)


def sample_frame_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly from the first to the last frame (all frames if fewer)."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({round(i * (num_frames - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]


def contact_sheet(
    source: VideoSource, instances: Sequence[dict], num_frames: int = 8, columns: int = 4, thumb_width: int = 320
) -> Image.Image:
    """A grid of evenly sampled overlay frames, `thumb_width` pixels wide, each captioned with its frame number."""
    wanted = sample_frame_indices(source.num_frames, num_frames)
    colours = instance_colours(len(instances))
    captions = [caption(instance) for instance in instances]
    thumbs = []
    for index, frame in enumerate(source.frames()):
        if index in wanted:
            drawn = draw_instances(frame, [frame_mask(i, index) for i in instances], colours, captions)
            thumbs.append((index, _thumbnail(drawn, thumb_width)))
    return _grid(thumbs, columns)


def write_contact_sheet(path: str | os.PathLike, source: VideoSource, instances: Sequence[dict], **kwargs) -> Path:
    """Save `contact_sheet(source, instances, **kwargs)` as a PNG."""
    path = Path(path)
    contact_sheet(source, instances, **kwargs).save(path)
    return path


# ----------------------------------------------------------------------------------------------- helpers


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask that touch a pixel outside it (4-neighbourhood)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _draw_label(draw: ImageDraw.ImageDraw, font, corner: tuple[int, int], text: str, colour: tuple) -> None:
    """Text in black on a box of the instance's colour, kept inside the frame."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    width, height = right - left + 4, bottom - top + 4
    x = min(max(corner[0], 0), max(draw.im.size[0] - width, 0))
    y = min(max(corner[1] - height, 0), max(draw.im.size[1] - height, 0))
    draw.rectangle((x, y, x + width, y + height), fill=colour)
    draw.text((x + 2 - left, y + 2 - top), text, fill=(0, 0, 0), font=font)


def _thumbnail(frame: np.ndarray, width: int) -> Image.Image:
    """The frame scaled to `width` pixels wide (small videos are enlarged so that the sheet stays legible)."""
    image = Image.fromarray(frame)
    return image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)


def _grid(thumbs: list[tuple[int, Image.Image]], columns: int) -> Image.Image:
    """Thumbnails in rows of `columns`, each with a "frame N" strip above it."""
    caption_height, gap = 14, 4
    width, height = thumbs[0][1].size
    columns = min(columns, len(thumbs))
    rows = -(-len(thumbs) // columns)
    sheet = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + caption_height + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for position, (index, thumb) in enumerate(thumbs):
        x = gap + (position % columns) * (width + gap)
        y = gap + (position // columns) * (height + caption_height + gap)
        draw.text((x, y), f"frame {index}", fill=(0, 0, 0), font=ImageFont.load_default())
        sheet.paste(thumb, (x, y + caption_height))
    return sheet
