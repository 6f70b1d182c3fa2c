"""Synthetic video instance segmentation data: moving, scaling, occluding textured shapes.

The generator draws videos of textured shapes on textured backgrounds and writes them in the
YouTube-VIS format (`JPEGImages/<video>/<frame>.jpg` plus `instances.json`). The tests, the demo
model and the benchmarks train and evaluate on it, so it is built to be:

- exact: every object is painted back to front into an owner map, and an object's mask in a frame is
  the set of pixels it owns after occlusion by the shapes in front of it, so the annotation is
  exactly what is visible (JPEG compression changes colours, never the masks);
- learnable: the class of an object is its shape type and its colour family (saturated hues on a
  desaturated background), both visible in every frame, so a small model can tell classes apart;
  consecutive classes differ in both, so a small set of classes is not told apart by shape alone;
- video-like: objects move, grow or shrink, spin, occlude each other, enter and leave the frame or
  pop in and out, so some frames of an instance are absent (null in the annotation);
- of any length: with `motion="linear"` (the default, what the demo model was trained on) objects keep their
  velocity and exponential growth, which suits clips of a few dozen frames; with `motion="bounded"` they bounce
  off the borders (some roam beyond them and come back), their sizes oscillate within the range the linear
  videos start in, and some disappear for a while and come back, so a video of thousands of frames looks
  like its first hundred;
- deterministic: video `index` of a data set is drawn from `numpy.random.default_rng([seed, index])`,
  so the same seed always gives the same videos, whatever the number of videos asked for.
"""

from __future__ import annotations

import colorsys
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm.auto import tqdm

from ..ytvis.rle import encode_track

MOTIONS = ("linear", "bounded")
SHAPES = ("ellipse", "rectangle", "triangle", "star", "cross")
# Colour families: name and the centre of its hue range, in degrees.
COLOUR_FAMILIES = (
    ("red", 0.0),
    ("yellow", 55.0),
    ("green", 120.0),
    ("cyan", 180.0),
    ("blue", 230.0),
    ("magenta", 300.0),
)
MAX_CLASSES = len(SHAPES) * len(COLOUR_FAMILIES)

_HUE_JITTER_DEGREES = 10.0
_BACKGROUND_MAX_SATURATION = 0.25
_PIXEL_NOISE_STD = 3.0


@dataclass
class SyntheticVideo:
    """One rendered video and its exact ground truth.

    Attributes:
        name: folder name of the video, e.g. "video_00003".
        frames: (T, H, W, 3) uint8 RGB frames, before any JPEG compression.
        masks: (N, T, H, W) bool, the visible pixels of each object in each frame.
        labels: (N,) int64, 0-based class of each object (`category_names(K)[label]`).
    """

    name: str
    frames: np.ndarray
    masks: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class _LinearMotion:
    """Constant velocity, exponential growth and constant spin, for frames first_frame..last_frame (inclusive)."""

    center: np.ndarray  # (2,) (x, y) at frame 0, in pixels
    velocity: np.ndarray  # (2,) (dx, dy) per frame
    radius: float  # size at frame 0
    growth: float  # log-scale change per frame
    angle: float  # rotation at frame 0, radians
    spin: float  # rotation per frame, radians
    first_frame: int
    last_frame: int

    def frames(self) -> range:
        """The frames the object exists in."""
        return range(self.first_frame, self.last_frame + 1)

    def pose(self, t: int) -> tuple[np.ndarray, float, float]:
        """(center (2,), radius, angle) at frame `t`."""
        return self.center + t * self.velocity, self.radius * math.exp(self.growth * t), self.angle + t * self.spin


@dataclass(frozen=True)
class _BoundedMotion:
    """Motion that stays in distribution however long the video: the center bounces inside a box, the size
    oscillates between fixed bounds, and the object is absent outside its `present` intervals.

    A box that reaches beyond the frame makes the object roam out of view and come back on its own.
    """

    center: np.ndarray  # (2,) (x, y) at frame 0, in pixels
    velocity: np.ndarray  # (2,) (dx, dy) per frame, reversed at the box's sides
    box_low: np.ndarray  # (2,) smallest x and y of the center
    box_high: np.ndarray  # (2,) largest x and y of the center
    radius: float  # the size oscillates around this, as radius * exp(amplitude * sin(...))
    size_amplitude: float
    size_period: float  # frames
    size_phase: float
    angle: float
    spin: float
    present: tuple[tuple[int, int], ...]  # [start, stop) intervals of frames the object exists in

    def frames(self) -> list[int]:
        """The frames the object exists in."""
        return [t for start, stop in self.present for t in range(start, stop)]

    def pose(self, t: int) -> tuple[np.ndarray, float, float]:
        """(center (2,), radius, angle) at frame `t`: the straight path folded back into the box at its sides."""
        span = self.box_high - self.box_low
        unfolded = np.mod(self.center - self.box_low + t * self.velocity, 2.0 * span)  # (2,) in [0, 2 * span)
        center = self.box_low + np.minimum(unfolded, 2.0 * span - unfolded)  # reflected at both sides
        wave = math.sin(2.0 * math.pi * t / self.size_period + self.size_phase)
        return center, self.radius * math.exp(self.size_amplitude * wave), self.angle + t * self.spin


@dataclass(frozen=True)
class _ObjectTrack:
    """Appearance and motion of one object over the video."""

    label: int
    colour: np.ndarray  # (3,) float RGB in 0-255
    pattern: str  # "stripes" or "checker", drawn in the object's own coordinates
    pattern_frequency: float
    pattern_phase: float
    aspect: float  # width / height stretch of the shape
    motion: _LinearMotion | _BoundedMotion


def category_names(num_classes: int) -> list[str]:
    """Names of the first `num_classes` classes: "red_ellipse", "yellow_rectangle", "green_triangle", ...

    Class k is shape `k % 5` in colour family `k % 6`. As 5 and 6 are coprime, the 30 classes are all
    the shape x colour pairs, and any few consecutive classes differ in both shape and colour.
    """
    _check_num_classes(num_classes)
    return [f"{class_colour_family(k)[0]}_{class_shape(k)}" for k in range(num_classes)]


def class_shape(label: int) -> str:
    """The shape of class `label` (0-based)."""
    return SHAPES[label % len(SHAPES)]


def class_colour_family(label: int) -> tuple[str, float]:
    """The colour family of class `label` (0-based): its name and the centre of its hue range in degrees."""
    return COLOUR_FAMILIES[label % len(COLOUR_FAMILIES)]


def ytvis_categories(num_classes: int) -> list[dict]:
    """The `categories` list of the YouTube-VIS annotation file (ids 1..K)."""
    return [
        {"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(category_names(num_classes))
    ]


def _check_num_classes(num_classes: int) -> None:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be between 1 and {MAX_CLASSES} (shape x colour family), got {num_classes}")


def generate_video(
    index: int,
    *,
    seed: int = 0,
    num_frames: int = 8,
    height: int = 240,
    width: int = 320,
    num_classes: int = 6,
    max_objects: int = 4,
    motion: str = "linear",
) -> SyntheticVideo:
    """Render video number `index` of the synthetic set drawn from `seed`, without touching the disk.

    `motion` is "linear" (constant velocity and growth: the videos the tests and the demo model use) or "bounded"
    (bouncing, oscillating sizes, gaps: in distribution at any length; see the module docstring). Every returned
    object is visible in at least one frame; frames where it is fully hidden or out of view have an all-False mask.
    """
    _check_num_classes(num_classes)
    if num_frames < 1 or height < 16 or width < 16 or max_objects < 1:
        raise ValueError("need num_frames >= 1, height and width >= 16 and max_objects >= 1")
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    sample_track = _sample_track if motion == "linear" else _sample_bounded_track
    rng = np.random.default_rng([seed, index])
    num_objects = int(rng.integers(1, max_objects + 1))
    # List order is depth order, back to front; the first sampled object goes in front and is
    # placed inside the frame at frame 0, so every video has at least one visible object.
    tracks = [sample_track(rng, num_frames, height, width, num_classes, anchor=(k == 0)) for k in range(num_objects)]
    tracks.reverse()

    frames = _render_background(rng, num_frames, height, width)  # (T, H, W, 3) float
    owner = np.full((num_frames, height, width), -1, dtype=np.int16)  # index of the front object per pixel
    for depth, track in enumerate(tracks):
        for t in track.motion.frames():
            _paint_object(frames[t], owner[t], depth, track, t)
    frames += _PIXEL_NOISE_STD * rng.standard_normal(frames.shape, dtype=np.float32)
    frames = np.clip(np.rint(frames), 0, 255).astype(np.uint8)

    masks = owner[None] == np.arange(len(tracks), dtype=np.int16)[:, None, None, None]  # (N, T, H, W)
    visible = masks.any(axis=(1, 2, 3))
    labels = np.array([track.label for track in tracks], dtype=np.int64)
    return SyntheticVideo(name=video_name(index), frames=frames, masks=masks[visible], labels=labels[visible])


def video_name(index: int) -> str:
    """Folder name of video `index` (0-based position in the whole synthetic set)."""
    return f"video_{index:05d}"


def _sample_track(
    rng: np.random.Generator, num_frames: int, height: int, width: int, num_classes: int, anchor: bool
) -> _ObjectTrack:
    """Draw one object's class, look and trajectory.

    A non-anchor object may start outside the frame and move in (entering), may leave by moving
    out, and may exist only in a window of frames (popping in and out).
    """
    label = int(rng.integers(num_classes))
    short_side = min(height, width)
    radius = float(rng.uniform(0.1, 0.25) * short_side)
    speed = float(rng.uniform(0.005, 0.04) * short_side)
    heading = float(rng.uniform(0.0, 2.0 * math.pi))
    velocity = speed * np.array([math.cos(heading), math.sin(heading)])
    center = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
    if not anchor and rng.random() < 0.25:
        center, velocity = _entering_motion(rng, num_frames, height, width, radius)
    first_frame, last_frame = 0, num_frames - 1
    if not anchor and num_frames > 2 and rng.random() < 0.25:
        first_frame = int(rng.integers(0, num_frames // 2 + 1))
        last_frame = int(rng.integers(max(first_frame, num_frames // 2), num_frames))
    colour = _class_colour(rng, label)
    pattern, pattern_frequency, pattern_phase = _sample_pattern(rng)
    motion = _LinearMotion(
        center=center,
        velocity=velocity,
        radius=radius,
        growth=float(rng.uniform(-0.04, 0.04)),
        angle=float(rng.uniform(0.0, 2.0 * math.pi)),
        spin=float(rng.uniform(-0.1, 0.1)),
        first_frame=first_frame,
        last_frame=last_frame,
    )
    aspect = float(rng.uniform(0.7, 1.4))
    return _ObjectTrack(label, colour, pattern, pattern_frequency, pattern_phase, aspect, motion)


def _sample_pattern(rng: np.random.Generator) -> tuple[str, float, float]:
    """An object's texture: "stripes" or "checker", its frequency and its phase."""
    return (
        str(rng.choice(["stripes", "checker"])),
        float(rng.uniform(2.0, 5.0)),
        float(rng.uniform(0.0, 2.0 * math.pi)),
    )


# Bounded motion. Sizes stay within the radii linear videos start with (0.1-0.25 of the short side) and change at
# most as fast as their growth (0.04 per frame); speeds and spins are theirs.
_BOUNDED_RADIUS = (0.13, 0.19)  # of the short side: the middle of the oscillation
_BOUNDED_SIZE_AMPLITUDE = 0.25  # most log-size change: 0.13 * e^-0.25 = 0.10, 0.19 * e^0.25 = 0.24
_BOUNDED_SIZE_PERIOD = (40.0, 120.0)  # frames; amplitude * 2 pi / period <= 0.04
_BOUNDED_ROAM_PROBABILITY = 0.35  # a roaming object's box reaches beyond the frame: it leaves and comes back
_BOUNDED_ROAM_MARGIN = (1.5, 4.5)  # how far beyond the border the box reaches, in radii
_BOUNDED_LATE_PROBABILITY = 0.3  # the object first appears after frame 0
_BOUNDED_GAP_PROBABILITY = 0.5  # the object disappears for a while, again and again
_BOUNDED_PRESENT_FRAMES = (32, 192)  # time between two disappearances
_BOUNDED_GAP_FRAMES = (4, 48)  # time away


def _sample_bounded_track(
    rng: np.random.Generator, num_frames: int, height: int, width: int, num_classes: int, anchor: bool
) -> _ObjectTrack:
    """Draw one object whose motion stays in distribution at any length (`_BoundedMotion`).

    The anchor object bounces inside the frame and is there in every frame. Any other may roam beyond the borders
    (so it leaves and comes back), appear late, and pop out for a while and come back, again and again; its events
    happen at the same rate whatever the video's length.
    """
    label = int(rng.integers(num_classes))
    short_side = min(height, width)
    radius = float(rng.uniform(*_BOUNDED_RADIUS) * short_side)
    speed = float(rng.uniform(0.005, 0.04) * short_side)
    heading = float(rng.uniform(0.0, 2.0 * math.pi))
    margin = radius  # the center stays a radius away from the borders: the object is mostly in view
    if not anchor and rng.random() < _BOUNDED_ROAM_PROBABILITY:
        margin = -float(rng.uniform(*_BOUNDED_ROAM_MARGIN)) * radius
    size = np.array([width, height], dtype=np.float64)
    box_low = np.minimum(np.full(2, margin), size / 2.0)  # a frame too small for the margin pins the center
    box_high = np.maximum(size - margin, box_low + 1e-6)
    motion = _BoundedMotion(
        center=box_low + rng.uniform(0.0, 1.0, size=2) * (box_high - box_low),
        velocity=speed * np.array([math.cos(heading), math.sin(heading)]),
        box_low=box_low,
        box_high=box_high,
        radius=radius,
        size_amplitude=float(rng.uniform(0.0, _BOUNDED_SIZE_AMPLITUDE)),
        size_period=float(rng.uniform(*_BOUNDED_SIZE_PERIOD)),
        size_phase=float(rng.uniform(0.0, 2.0 * math.pi)),
        angle=float(rng.uniform(0.0, 2.0 * math.pi)),
        spin=float(rng.uniform(-0.1, 0.1)),
        present=((0, num_frames),) if anchor else _sample_presence(rng, num_frames),
    )
    pattern, pattern_frequency, pattern_phase = _sample_pattern(rng)
    aspect = float(rng.uniform(0.7, 1.4))
    return _ObjectTrack(label, _class_colour(rng, label), pattern, pattern_frequency, pattern_phase, aspect, motion)


def _sample_presence(rng: np.random.Generator, num_frames: int) -> tuple[tuple[int, int], ...]:
    """[start, stop) intervals of the frames a non-anchor object exists in: maybe a late start, maybe gaps."""
    start = int(rng.integers(1, num_frames)) if num_frames > 1 and rng.random() < _BOUNDED_LATE_PROBABILITY else 0
    if rng.random() >= _BOUNDED_GAP_PROBABILITY:
        return ((start, num_frames),)
    intervals = []
    while start < num_frames:
        stop = min(num_frames, start + int(rng.integers(*_BOUNDED_PRESENT_FRAMES)))
        intervals.append((start, stop))
        start = stop + int(rng.integers(*_BOUNDED_GAP_FRAMES))
    return tuple(intervals)


def _entering_motion(
    rng: np.random.Generator, num_frames: int, height: int, width: int, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Start position just outside one side of the frame and a velocity that brings the object in.

    The object reaches a random point inside the frame after 30-70% of the video.
    """
    margin = 1.3 * radius
    side = int(rng.integers(4))
    along_x, along_y = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
    start = [(-margin, along_y), (width + margin, along_y), (along_x, -margin), (along_x, height + margin)][side]
    target = np.array([rng.uniform(0.25, 0.75) * width, rng.uniform(0.25, 0.75) * height])
    frames_to_target = max(1.0, rng.uniform(0.3, 0.7) * num_frames)
    start = np.array(start)
    return start, (target - start) / frames_to_target


def _class_colour(rng: np.random.Generator, label: int) -> np.ndarray:
    """A saturated RGB colour (0-255) from the colour family of class `label`, with a jittered hue."""
    hue_centre = class_colour_family(label)[1]
    hue = ((hue_centre + rng.uniform(-_HUE_JITTER_DEGREES, _HUE_JITTER_DEGREES)) % 360.0) / 360.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0))
    return 255.0 * np.array(rgb)


def _render_background(rng: np.random.Generator, num_frames: int, height: int, width: int) -> np.ndarray:
    """A desaturated two-colour texture of drifting sine gratings; returns (T, H, W, 3) float32 in 0-255."""
    colours = []
    for _ in range(2):
        rgb = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, _BACKGROUND_MAX_SATURATION), rng.uniform(0.25, 0.85))
        colours.append(255.0 * np.array(rgb, dtype=np.float32))
    y = np.arange(height, dtype=np.float32)[:, None]  # (H, 1)
    x = np.arange(width, dtype=np.float32)[None, :]  # (1, W)
    t = np.arange(num_frames, dtype=np.float32)[:, None, None]  # (T, 1, 1)
    texture = np.zeros((num_frames, height, width), dtype=np.float32)
    num_gratings = 3
    for _ in range(num_gratings):
        direction = rng.uniform(0.0, 2.0 * math.pi)
        wavelength = rng.uniform(0.1, 0.5) * min(height, width)
        drift = rng.uniform(-0.3, 0.3)  # radians per frame: the background slowly moves
        phase = (x * math.cos(direction) + y * math.sin(direction)) * (2.0 * math.pi / wavelength)
        texture += np.sin(phase + rng.uniform(0.0, 2.0 * math.pi) + drift * t)
    mix = 0.5 + texture / (2.0 * num_gratings)  # (T, H, W) in [0, 1]
    return colours[0] * (1.0 - mix[..., None]) + colours[1] * mix[..., None]


def _paint_object(frame: np.ndarray, owner: np.ndarray, depth: int, track: _ObjectTrack, t: int) -> None:
    """Paint `track` at frame `t` over `frame` (H, W, 3) and mark its pixels with `depth` in `owner` (H, W).

    Only the object's bounding window is computed; shapes fit in a circle of `1.25 * radius * stretch`.
    """
    height, width = owner.shape
    center, radius, angle = track.motion.pose(t)
    stretch = max(math.sqrt(track.aspect), 1.0 / math.sqrt(track.aspect))
    reach = 1.25 * radius * stretch + 2.0
    x0, x1 = max(0, int(center[0] - reach)), min(width, int(center[0] + reach) + 1)
    y0, y1 = max(0, int(center[1] - reach)), min(height, int(center[1] + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return  # entirely outside the frame
    # Pixel centres of the window in the object's own frame, in units of its radius: (h, w) each.
    dx = np.arange(x0, x1)[None, :] + 0.5 - center[0]
    dy = np.arange(y0, y1)[:, None] + 0.5 - center[1]
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    u = (dx * cos_a + dy * sin_a) / (radius * math.sqrt(track.aspect))
    v = (-dx * sin_a + dy * cos_a) * math.sqrt(track.aspect) / radius
    inside = shape_contains(class_shape(track.label), u, v)  # (h, w) bool
    shade = 0.65 + 0.35 * _pattern(track, u, v)  # (h, w) in [0.65, 1]
    window = frame[y0:y1, x0:x1]
    window[inside] = shade[inside][:, None] * track.colour
    owner[y0:y1, x0:x1][inside] = depth


def _pattern(track: _ObjectTrack, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The object's texture in [0, 1], in its own coordinates so that it moves with the object."""
    f = track.pattern_frequency
    if track.pattern == "stripes":
        return 0.5 + 0.5 * np.sin(f * math.pi * u + track.pattern_phase)
    return ((np.floor(f * u + track.pattern_phase) + np.floor(f * v)) % 2).astype(np.float64)


def shape_contains(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v), in the shape's unit frame, fall inside `shape`; all shapes fit the unit circle."""
    if shape == "ellipse":
        return u * u + v * v <= 1.0
    if shape == "rectangle":
        return (np.abs(u) <= 0.75) & (np.abs(v) <= 0.6)
    if shape == "triangle":
        return _star_contains(u, v, points=3, inner_radius=math.cos(math.pi / 3))
    if shape == "star":
        return _star_contains(u, v, points=5, inner_radius=0.45)
    if shape == "cross":
        arm, reach = 0.3, 0.9
        return ((np.abs(u) <= reach) & (np.abs(v) <= arm)) | ((np.abs(u) <= arm) & (np.abs(v) <= reach))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _star_contains(u: np.ndarray, v: np.ndarray, points: int, inner_radius: float) -> np.ndarray:
    """Inside test for a star polygon with `points` outer vertices at radius 1 and inner vertices at `inner_radius`.

    With `inner_radius = cos(pi / points)` the inner vertices lie on the edges and the star is the
    regular polygon. By symmetry every point is folded into the sector between an outer vertex (at
    angle 0) and the next inner vertex (at angle pi / points), where the boundary is one segment.
    """
    sector = math.pi / points
    radius = np.hypot(u, v)
    angle = np.mod(np.arctan2(v, u) + math.pi / 2.0, 2.0 * sector)  # an outer vertex points up (-v)
    folded = np.minimum(angle, 2.0 * sector - angle)  # in [0, sector]
    px, py = radius * np.cos(folded), radius * np.sin(folded)
    # Segment from the outer vertex (1, 0) to the inner vertex; the origin is on its inner side.
    ex, ey = inner_radius * math.cos(sector) - 1.0, inner_radius * math.sin(sector)
    cross = ex * py - ey * (px - 1.0)  # > 0 on the origin's side (the origin gives ey > 0)
    return cross >= 0.0


def video_annotations(video: SyntheticVideo, video_id: int, first_annotation_id: int) -> list[dict]:
    """YouTube-VIS `annotations` entries of one video: per-frame RLE, area and box, null where absent."""
    annotations = []
    _, num_frames, height, width = video.masks.shape
    for k, (object_masks, label) in enumerate(zip(video.masks, video.labels, strict=True)):
        segmentations = encode_track(object_masks)
        areas = [None if rle is None else float(mask_utils.area(rle)) for rle in segmentations]
        bboxes = [None if rle is None else [float(b) for b in mask_utils.toBbox(rle)] for rle in segmentations]
        annotations.append(
            {
                "id": first_annotation_id + k,
                "video_id": video_id,
                "category_id": int(label) + 1,
                "iscrowd": 0,
                "height": height,
                "width": width,
                "segmentations": segmentations,
                "areas": areas,
                "bboxes": bboxes,
            }
        )
    return annotations


def split_indices(num_videos: int, valid_fraction: float) -> dict[str, list[int]]:
    """Video indices of the train and valid splits: the last `round(N * F)` videos are for validation.

    A positive fraction gives at least one validation video when there are two or more videos, and
    the training split always keeps at least one video.
    """
    if num_videos < 1:
        raise ValueError(f"num_videos must be at least 1, got {num_videos}")
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    num_valid = round(num_videos * valid_fraction)
    if valid_fraction > 0 and num_videos >= 2:
        num_valid = max(num_valid, 1)
    num_valid = min(num_valid, num_videos - 1)
    num_train = num_videos - num_valid
    return {"train": list(range(num_train)), "valid": list(range(num_train, num_videos))}


def make_synthetic_dataset(
    output_dir: str | Path,
    *,
    num_videos: int,
    num_frames: int,
    num_classes: int,
    height: int = 240,
    width: int = 320,
    seed: int = 0,
    valid_fraction: float = 0.2,
    max_objects: int = 4,
    motion: str = "linear",
    jpeg_quality: int = 90,
    progress: bool = True,
) -> dict[str, Path]:
    """Write a YouTube-VIS-format synthetic set to `output_dir/train` and `output_dir/valid`.

    Each split holds `JPEGImages/<video>/<frame>.jpg` and `instances.json`, with video and
    annotation ids starting at 1 in each split. `motion` is "linear" or "bounded" (see `generate_video`).
    Returns the path of each split's `instances.json`.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    output_dir = Path(output_dir)
    splits = split_indices(num_videos, valid_fraction)
    bar = tqdm(total=num_videos, desc="synthetic videos", unit="video", disable=not progress)
    paths = {}
    for split, indices in splits.items():
        paths[split] = _write_split(
            output_dir / split,
            indices,
            bar,
            seed=seed,
            num_frames=num_frames,
            height=height,
            width=width,
            num_classes=num_classes,
            max_objects=max_objects,
            motion=motion,
            jpeg_quality=jpeg_quality,
        )
    bar.close()
    return paths


def _write_split(split_dir: Path, indices: list[int], bar: tqdm, *, jpeg_quality: int, **video_kwargs) -> Path:
    """Render the videos `indices`, save their JPEG frames and the split's `instances.json`."""
    image_root = split_dir / "JPEGImages"
    videos, annotations = [], []
    for video_id, index in enumerate(indices, start=1):
        video = generate_video(index, **video_kwargs)
        file_names = _save_frames(video, image_root, jpeg_quality)
        num_frames, height, width = video.frames.shape[:3]
        videos.append(
            {"id": video_id, "width": width, "height": height, "length": num_frames, "file_names": file_names}
        )
        annotations.extend(video_annotations(video, video_id, first_annotation_id=len(annotations) + 1))
        bar.update(1)
    content = {
        "info": {
            "description": "m2f-video synthetic shapes",
            "seed": video_kwargs["seed"],
            "motion": video_kwargs["motion"],
        },
        "videos": videos,
        "categories": ytvis_categories(video_kwargs["num_classes"]),
        "annotations": annotations,
    }
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / "instances.json"
    path.write_text(json.dumps(content))
    return path


def _save_frames(video: SyntheticVideo, image_root: Path, jpeg_quality: int) -> list[str]:
    """Save the frames as `<video>/<frame>.jpg` under `image_root`; returns the relative file names."""
    (image_root / video.name).mkdir(parents=True, exist_ok=True)
    file_names = []
    for t, frame in enumerate(video.frames):
        file_name = f"{video.name}/{t:05d}.jpg"
        Image.fromarray(frame).save(image_root / file_name, quality=jpeg_quality)
        file_names.append(file_name)
    return file_names
