"""Video processor of the video Mask2Former.

Pre-processing reproduces what the official detectron2 pipeline feeds the model at test time:

1. resize every frame so that its shortest side is `size["shortest_edge"]`, capped so that the longest side is
   at most `size["longest_edge"]` (detectron2's `ResizeShortestEdge`: its size arithmetic, and Pillow's bilinear
   resize of the uint8 frame, so the resized frames are the official ones bit for bit);
2. normalise with the ImageNet mean/std (the official code computes `(x - mean * 255) / (std * 255)` on 0..255
   values, and so does this processor, bit for bit);
3. pad at the bottom and right with zeros, *after* normalisation, to a multiple of `size_divisibility` (32);
   every video of a batch is padded to one common size.

Post-processing reproduces the official `inference_video`: the top-k (query, class) pairs by softmax score, and
for each a mask volume at the original frame size. Only the kept queries are upsampled. Its two steps live in
`post_processing.py`, which every inference path shares.
"""

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata, load_video

from ..configuration import Mask2FormerVideoConfig
from .post_processing import MaskGeometry, class_probabilities, select_instances

# A size given as (height, width) per video: a list of pairs or a (B, 2) tensor.
SizesInput = torch.Tensor | Sequence[Sequence[int]]


class Mask2FormerVideoProcessorKwargs(VideosKwargs, total=False):
    """The keyword arguments of [`Mask2FormerVideoProcessor`]: transformers' video kwargs plus the padding step.

    size_divisibility (`int`):
        Pad height and width up to a multiple of this number (32 for Mask2Former; 0 or 1 pads only to the
        largest video of the batch).
    resize_backend (`str`):
        "pillow" (default): Pillow's resize, frame by frame on the CPU, exactly the official test-time resize.
        "torch": torchvision's antialiased bilinear resize on the frames' device; faster on an accelerator, and
        within one grey level of Pillow (see README).
    """

    size_divisibility: int
    resize_backend: str


def get_resize_output_size(height: int, width: int, shortest_edge: int, longest_edge: int) -> tuple[int, int]:
    """The (height, width) detectron2's `ResizeShortestEdge` produces at test time, computed as it does.

    The shortest side becomes `shortest_edge` exactly and the other one is scaled; if the longest side then exceeds
    `longest_edge`, both are scaled down so that it equals `longest_edge`. Sides are rounded with `int(x + 0.5)`.
    The float operations are detectron2's, in its order, so that sizes agree even where a side lands on .5.
    """
    scale = shortest_edge / min(height, width)
    if height < width:
        new_height, new_width = float(shortest_edge), scale * width
    else:
        new_height, new_width = scale * height, float(shortest_edge)
    if max(new_height, new_width) > longest_edge:
        cap = longest_edge / max(new_height, new_width)
        new_height, new_width = new_height * cap, new_width * cap
    return int(new_height + 0.5), int(new_width + 0.5)


# `resize_backend` values: "pillow" reproduces the official test-time resize exactly; "torch" is torchvision's
# antialiased bilinear on the frames' own device (faster on an accelerator, within one grey level of Pillow).
RESIZE_BACKENDS = ("pillow", "torch")


def pillow_resize(video: torch.Tensor, height: int, width: int, resample: int) -> torch.Tensor:
    """Resize (T, 3, H, W) frames with Pillow, frame by frame, as detectron2's `ResizeTransform` does.

    uint8 frames go through Pillow as RGB images, so the result is Pillow's to the bit (its bilinear filter widens
    when shrinking, like an antialiased resize, and rounds once). Float frames go through Pillow's 32-bit float
    mode one channel at a time: the same filter, without the rounding. The result is on the input's device.
    """
    frames = video.permute(0, 2, 3, 1).cpu().numpy()  # (T, H, W, 3)
    if video.dtype == torch.uint8:
        resized = [np.asarray(PIL.Image.fromarray(frame).resize((width, height), resample)) for frame in frames]
    else:
        resized = [
            np.stack(
                [
                    np.asarray(PIL.Image.fromarray(channel, mode="F").resize((width, height), resample))
                    for channel in frame.astype(np.float32).transpose(2, 0, 1)
                ],
                axis=-1,
            )
            for frame in frames
        ]
    return torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).to(video.device)  # (T, 3, h, w)


def _is_array(obj: Any) -> bool:
    return isinstance(obj, (np.ndarray, torch.Tensor))


def _is_frame(obj: Any) -> bool:
    """A single frame: a PIL image or a 3-D array (H, W, C) / (C, H, W)."""
    return isinstance(obj, PIL.Image.Image) or (_is_array(obj) and obj.ndim == 3)


def _split_batch(videos: Any) -> list[Any]:
    """The input as a list with one entry per video (a path, a 4-D array, or a list of frames)."""
    if isinstance(videos, (str, os.PathLike)):
        return [videos]
    if _is_array(videos):
        if videos.ndim == 4:
            return [videos]
        if videos.ndim == 5:
            return list(videos)
        raise ValueError(
            f"A video array must have 4 dimensions (T, H, W, 3) or (T, 3, H, W), or 5 for a batch; "
            f"got shape {tuple(videos.shape)}."
        )
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise ValueError("Got an empty list: expected a video (a list of frames) or a batch of videos.")
        # A list whose first entry is a frame is one video; otherwise it is a batch of videos.
        return [videos] if _is_frame(videos[0]) else list(videos)
    raise ValueError(
        f"Unsupported video input of type {type(videos).__name__}: expected a numpy array, a torch tensor, "
        "a list of PIL images, a video file path, or a list of these."
    )


def _frame_to_array(frame: Any) -> np.ndarray | torch.Tensor:
    """One frame as an array; PIL images are converted to RGB."""
    if isinstance(frame, PIL.Image.Image):
        return np.asarray(frame.convert("RGB"))
    if _is_array(frame) and frame.ndim == 3:
        return frame
    raise ValueError(f"Expected every frame to be a PIL image or a 3-D array; got {type(frame).__name__}.")


def _stack_frames(frames: Sequence[Any]) -> np.ndarray | torch.Tensor:
    """A list of frames as one 4-D array, refusing frames of different sizes."""
    if len(frames) == 0:
        raise ValueError("Got an empty list of frames: a video needs at least one frame.")
    arrays = [_frame_to_array(frame) for frame in frames]
    for index, array in enumerate(arrays[1:], start=1):
        if tuple(array.shape) != tuple(arrays[0].shape):
            raise ValueError(
                f"All frames of one video must have the same size: frame 0 has shape {tuple(arrays[0].shape)} "
                f"but frame {index} has shape {tuple(array.shape)}."
            )
    if isinstance(arrays[0], torch.Tensor):
        return torch.stack([torch.as_tensor(array) for array in arrays])
    return np.stack([np.asarray(array) for array in arrays])


def _decode_video_file(path: str | os.PathLike, sample_indices_fn: Callable | None) -> tuple[np.ndarray, Any]:
    """Decode a video file with PyAV (through transformers' `load_video`) into (T, H, W, 3) uint8 frames."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"Video file not found: {path!r}.")
    try:
        return load_video(path, backend="pyav", sample_indices_fn=sample_indices_fn)
    except (ValueError, OSError, IndexError) as error:  # PyAV's errors are ValueError/OSError subclasses
        raise ValueError(f"Could not decode video file {path!r}: {error}") from error


def _channels_axis(shape: tuple[int, ...], layout: ChannelDimension | str | None) -> int:
    """The channel axis (1 or -1) of a (T, 3, H, W) or (T, H, W, 3) video: as given, else where the 3 is.

    A shape with 3 on both axes (frames 3 pixels wide or high) is ambiguous and refused: the caller must say.
    """
    if layout is not None:
        axis = 1 if ChannelDimension(layout) == ChannelDimension.FIRST else -1
        if shape[axis] != 3:
            raise ValueError(
                f"expected RGB frames with 3 channels on the {ChannelDimension(layout).value} axis; got shape {shape}"
            )
        return axis
    if shape[1] == 3 and shape[-1] == 3:
        raise ValueError(
            f"shape {shape} is ambiguous: frames 3 pixels wide or high could be (T, 3, H, W) or (T, H, W, 3); "
            'pass input_data_format="channels_first" or "channels_last"'
        )
    if shape[1] == 3:
        return 1
    if shape[-1] == 3:
        return -1
    raise ValueError(f"expected RGB frames with 3 channels, as (T, H, W, 3) or (T, 3, H, W); got shape {shape}")


def _as_pixel_tensor(video: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A video's values as a tensor on the 0..255 scale: uint8 as is, other integers checked and made uint8.

    Integer frames in 0..255 take the same (exact) path as uint8 ones; bool frames and integers outside 0..255 are
    refused, since no reading of them as pixel values is the obvious one. Float frames are checked in `_preprocess`,
    which knows the expected scale.
    """
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(video if video.flags.writeable else video.copy())
    if video.dtype == torch.bool:
        raise ValueError("boolean frames are not pixel values: pass uint8 (0..255) or float frames")
    if video.dtype == torch.uint8 or video.is_floating_point():
        return video
    if video.is_complex() or (video.numel() and (video.min() < 0 or video.max() > 255)):
        raise ValueError(f"{video.dtype} frames must hold values in 0..255")
    return video.to(torch.uint8)


def _check_float_range(video: torch.Tensor, do_rescale: bool) -> None:
    """Float frames must be finite and, when the processor rescales them, on the 0..255 scale.

    With `do_rescale=True` (the default) float frames are read like uint8 ones, 0..255. Values outside that range
    are refused, and so are frames whose largest value is at most 1: those are almost surely on the 0..1 scale,
    which would silently become a near-black video. 0..1 frames are processed with `do_rescale=False`.
    """
    if not torch.isfinite(video).all():
        raise ValueError("contains non-finite values (NaN or infinity)")
    if not do_rescale:
        return
    low, high = video.min().item(), video.max().item()
    if low < 0 or high > 255:
        raise ValueError(f"float frames are read on the 0..255 scale; got values in [{low:g}, {high:g}]")
    if 0 < high <= 1:
        raise ValueError(
            "float frames hold values in [0, 1] but are read on the 0..255 scale: pass do_rescale=False "
            "for 0..1 frames, or multiply them by 255"
        )


class Mask2FormerVideoProcessor(BaseVideoProcessor):
    r"""
    Prepares videos for [`Mask2FormerVideoForVideoInstanceSegmentation`] and turns its outputs into instances.

    Calling the processor on one video or a batch returns a [`BatchFeature`] with:
    - `pixel_values_videos` (B, T, 3, Hp, Wp) float32: resized, normalised, zero-padded frames;
    - `pixel_mask` (B, Hp, Wp) int64: 1 on real pixels, 0 on padding;
    - `original_sizes` (B, 2) int64: (height, width) of the input frames;
    - `resized_sizes` (B, 2) int64: (height, width) after resizing, before padding.

    A video is a (T, H, W, 3) uint8 numpy array, a (T, 3, H, W) or (T, H, W, 3) torch tensor, a list of PIL
    images or of 3-D arrays, or a path to a video file (decoded with PyAV). A batch is a list of videos (or a 5-D
    array); its videos may differ in size but must have the same number of frames.

    Values: uint8 frames (or other integers in 0..255) are the exact path. Float frames are read on the 0..255
    scale; float frames in [0, 1] need `do_rescale=False` (they are refused otherwise, rather than read as a
    near-black video). Bool frames, values outside the range and NaN/infinity are refused. Layout: files and PIL
    images are channels-last; for arrays it is `input_data_format` if given, else the axis of size 3; an array
    with 3 on both candidate axes (frames 3 pixels high or wide) is refused unless `input_data_format` says.

    Defaults follow the official ResNet test configuration (shortest side 360, longest side at most 1333); use
    [`~Mask2FormerVideoProcessor.from_model_config`] to get the shortest side of a given model (480 for Swin).
    """

    valid_kwargs = Mask2FormerVideoProcessorKwargs
    model_input_names = ["pixel_values_videos", "pixel_mask"]

    do_resize = True
    size = {"shortest_edge": 360, "longest_edge": 1333}
    default_to_square = False
    resample = PILImageResampling.BILINEAR
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    do_pad = True
    size_divisibility = 32
    resize_backend = "pillow"
    do_center_crop = False
    do_convert_rgb = True
    do_sample_frames = False

    def __init__(self, **kwargs: Unpack[Mask2FormerVideoProcessorKwargs]) -> None:
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(
        cls, config: Mask2FormerVideoConfig, **kwargs: Unpack[Mask2FormerVideoProcessorKwargs]
    ) -> "Mask2FormerVideoProcessor":
        """The processor for a model: its test-time shortest side (`config.test_shortest_edge`), longest side 1333."""
        kwargs.setdefault("size", {"shortest_edge": config.test_shortest_edge, "longest_edge": 1333})
        return cls(**kwargs)

    # ----------------------------------------------------------------------------------------------------------
    # Input handling (called by `BaseVideoProcessor.preprocess`)
    # ----------------------------------------------------------------------------------------------------------

    def _decode_and_sample_videos(
        self,
        videos: Any,
        video_metadata: VideoMetadata | dict | list | None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
    ) -> tuple[list[tuple[np.ndarray | torch.Tensor, ChannelDimension | None]], list[VideoMetadata]]:
        """One 4-D array per video, with its layout where the input says it: files are decoded and lists of PIL
        images stacked (both channels-last), other lists of frames stacked, frames sampled if asked."""
        videos = _split_batch(videos)
        if isinstance(video_metadata, (dict, VideoMetadata)):
            video_metadata = [video_metadata]
        if video_metadata is not None and len(video_metadata) != len(videos):
            raise ValueError(f"Got {len(videos)} videos but {len(video_metadata)} `video_metadata` entries.")

        arrays, metadata = [], []
        for index, video in enumerate(videos):
            if isinstance(video, (str, os.PathLike)):
                array, meta = _decode_video_file(video, sample_indices_fn)
                layout = ChannelDimension.LAST
            else:
                is_list = isinstance(video, (list, tuple))
                array = _stack_frames(video) if is_list else video
                layout = ChannelDimension.LAST if is_list and isinstance(video[0], PIL.Image.Image) else None
                if not (_is_array(array) and array.ndim == 4):
                    found = f"shape {tuple(array.shape)}" if _is_array(array) else type(array).__name__
                    raise ValueError(
                        f"Video {index}: expected a 4-D array (T, H, W, 3) or (T, 3, H, W), a list of frames or a "
                        f"file path; got {found}."
                    )
                if len(array) == 0:
                    raise ValueError(f"Video {index} has zero frames: a video needs at least one frame.")
                given = video_metadata[index] if video_metadata is not None else {}
                meta = VideoMetadata(**{"total_num_frames": len(array), **dict(given)})
                if do_sample_frames:
                    meta.frames_indices = sample_indices_fn(metadata=meta)
                    array = array[meta.frames_indices]
            arrays.append((array, layout))
            metadata.append(meta)
        return arrays, metadata

    def _prepare_input_videos(
        self,
        videos: list[tuple[np.ndarray | torch.Tensor, ChannelDimension | None]],
        do_convert_rgb: bool | None = None,
        input_data_format: str | ChannelDimension | None = None,
        device: str | torch.device | None = None,
    ) -> list[torch.Tensor]:
        """Each video as a (T, 3, H, W) tensor of pixel values (uint8, or float checked in `_preprocess`).

        The layout is the one the input implies (files, PIL images), else `input_data_format`, else where the only
        axis of size 3 is; an array with 3 on both axes is refused. Frames must already be RGB with 3 channels (PIL
        images are converted when stacked), so `do_convert_rgb` has nothing left to do here.
        """
        prepared = []
        for index, (video, known_layout) in enumerate(videos):
            try:
                video = _as_pixel_tensor(video)
                axis = _channels_axis(tuple(video.shape), known_layout or input_data_format)
            except ValueError as error:
                raise ValueError(f"Video {index}: {error}.") from error
            video = video if axis == 1 else video.permute(0, 3, 1, 2)
            if device is not None:
                video = video.to(device)
            prepared.append(video.contiguous())  # (T, 3, H, W)
        return prepared

    # ----------------------------------------------------------------------------------------------------------
    # Pre-processing
    # ----------------------------------------------------------------------------------------------------------

    def _fuse_mean_std_and_rescale_factor(
        self,
        do_normalize: bool | None = None,
        image_mean: float | tuple[float, ...] | None = None,
        image_std: float | tuple[float, ...] | None = None,
        do_rescale: bool | None = None,
        rescale_factor: float | None = None,
        device: torch.device | None = None,
    ) -> tuple:
        """Fold the rescale factor into mean/std, computing in float64 and rounding once to float32.

        The official model normalises 0..255 values with the float32 constants (123.675, 116.28, 103.53) and
        (58.395, 57.12, 57.375). The base class multiplies in float32, which is one ulp off for one of them;
        rounding the float64 product gives exactly the official constants, hence bit-identical pixels.
        """
        if do_rescale and do_normalize:
            image_mean = (torch.tensor(image_mean, dtype=torch.float64) / rescale_factor).to(device, torch.float32)
            image_std = (torch.tensor(image_std, dtype=torch.float64) / rescale_factor).to(device, torch.float32)
            do_rescale = False
        return image_mean, image_std, do_rescale

    def _preprocess(
        self,
        videos: list[torch.Tensor],
        do_resize: bool,
        size: SizeDict,
        resample: PILImageResampling | int | None,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: float | tuple[float, ...],
        image_std: float | tuple[float, ...],
        do_pad: bool,
        size_divisibility: int,
        resize_backend: str,
        return_tensors: str | None = None,
        **kwargs: Any,
    ) -> BatchFeature:
        """Resize, normalise and pad a batch of (T, 3, H, W) videos into one (B, T, 3, Hp, Wp) tensor."""
        if resize_backend not in RESIZE_BACKENDS:
            raise ValueError(f"resize_backend must be one of {RESIZE_BACKENDS}; got {resize_backend!r}.")
        num_frames = sorted({len(video) for video in videos})
        if len(num_frames) > 1:
            raise ValueError(
                f"All videos of a batch must have the same number of frames; got {num_frames}. "
                "Process videos of different lengths in separate calls."
            )

        processed, original_sizes, resized_sizes = [], [], []
        for index, video in enumerate(videos):
            if video.is_floating_point():
                try:
                    _check_float_range(video, do_rescale)
                except ValueError as error:
                    raise ValueError(f"Video {index}: {error}.") from error
            original_sizes.append(tuple(video.shape[-2:]))
            if do_resize:
                height, width = get_resize_output_size(*video.shape[-2:], size.shortest_edge, size.longest_edge)
                if resize_backend == "pillow":
                    video = pillow_resize(video, height, width, PIL.Image.Resampling(int(resample)))
                else:
                    video = self.resize(video, SizeDict(height=height, width=width), resample=resample)
            resized_sizes.append(tuple(video.shape[-2:]))
            video = self.rescale_and_normalize(video, do_rescale, rescale_factor, do_normalize, image_mean, image_std)
            processed.append(video.to(torch.float32))  # (T, 3, h, w)

        pixel_values, pixel_mask = self._pad_batch(processed, do_pad, size_divisibility)
        data = {
            "pixel_values_videos": pixel_values,
            "pixel_mask": pixel_mask,
            "original_sizes": torch.tensor(original_sizes, dtype=torch.int64),
            "resized_sizes": torch.tensor(resized_sizes, dtype=torch.int64),
        }
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _pad_batch(
        videos: list[torch.Tensor], do_pad: bool, size_divisibility: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stack (T, 3, h, w) videos into (B, T, 3, Hp, Wp), zero-padded at the bottom/right, and a (B, Hp, Wp) mask.

        Hp, Wp are the largest h, w of the batch rounded up to a multiple of `size_divisibility` (as detectron2's
        `ImageList.from_tensors`). Without padding, all videos must already have one size.
        """
        heights = [video.shape[-2] for video in videos]
        widths = [video.shape[-1] for video in videos]
        padded_height, padded_width = max(heights), max(widths)
        if not do_pad:
            if len(set(heights)) > 1 or len(set(widths)) > 1:
                raise ValueError("Videos of a batch have different sizes: they can only be batched with do_pad=True.")
        elif size_divisibility > 1:
            padded_height = -(-padded_height // size_divisibility) * size_divisibility
            padded_width = -(-padded_width // size_divisibility) * size_divisibility

        num_frames, channels = videos[0].shape[:2]
        pixel_values = videos[0].new_zeros((len(videos), num_frames, channels, padded_height, padded_width))
        pixel_mask = torch.zeros(
            (len(videos), padded_height, padded_width), dtype=torch.int64, device=videos[0].device
        )
        for index, video in enumerate(videos):
            height, width = video.shape[-2:]
            pixel_values[index, :, :, :height, :width] = video
            pixel_mask[index, :height, :width] = 1
        return pixel_values, pixel_mask

    # ----------------------------------------------------------------------------------------------------------
    # Post-processing
    # ----------------------------------------------------------------------------------------------------------

    def post_process_video_instance_segmentation(
        self,
        outputs: Any,
        target_sizes: SizesInput | None = None,
        top_k: int | None = None,
        threshold: float = 0.0,
        resized_sizes: SizesInput | None = None,
        return_mask_logits: bool = False,
        inputs: BatchFeature | dict | None = None,
    ) -> list[dict[str, torch.Tensor]]:
        """Turn model outputs into scored instances, one mask volume each, as the official `inference_video` does.

        Per video: softmax over the classes, the no-object column dropped; the `top_k` best entries of the
        flattened (query, class) score matrix (flat index = query * K + class); those with a score above
        `threshold` are kept (`post_processing.select_instances`). Only for the kept queries, the (T, h, w) mask
        logits are mapped to the target size (`post_processing.MaskGeometry`: upsampled to the padded input size,
        cropped to the resized size, resized to the target size) and thresholded at 0, one query at a time.

        The easy call is the exact one: `post_process_video_instance_segmentation(outputs, inputs=inputs)` with the
        processor's output, which gives the original frame size and the size before padding. Without `inputs`,
        pass `target_sizes` and, if the frames were padded, `resized_sizes`: a target size other than the padded
        size without `resized_sizes` is refused, since the padding would be stretched into the masks.

        Args:
            outputs: model output with `class_queries_logits` (B, Q, K + 1) and `masks_queries_logits`
                (B, Q, T, h, w).
            target_sizes: (height, width) of the result per video; default: `inputs["original_sizes"]`.
            top_k: number of (query, class) pairs to consider per video; default: the config's `test_top_k`
                default (10). Pass `model.config.test_top_k` to follow a model's config.
            threshold: keep pairs whose score is strictly above this.
            resized_sizes: (height, width) per video before padding; default: `inputs["resized_sizes"]`, else the
                padded size (only allowed when the target size is the padded size).
            return_mask_logits: also return the float mask logits at the target size, before thresholding.
            inputs: the processor's output for these videos (its `original_sizes` and `resized_sizes` are used).

        Returns:
            One dict per video, sorted by score (descending): `scores` (N,) float32, `labels` (N,) int64,
            `query_indices` (N,) int64 (which query each instance comes from), `masks` (N, T, H, W) bool,
            and `mask_logits` (N, T, H, W) float32 if asked; N <= top_k.
        """
        top_k = Mask2FormerVideoConfig.test_top_k if top_k is None else top_k
        class_logits = outputs.class_queries_logits  # (B, Q, K + 1)
        mask_logits = outputs.masks_queries_logits  # (B, Q, T, h, w)
        batch_size = class_logits.shape[0]
        low_res_size = tuple(mask_logits.shape[-2:])
        target_sizes, resized_sizes = self._output_sizes(target_sizes, resized_sizes, inputs, batch_size)
        padded_size = (4 * low_res_size[0], 4 * low_res_size[1])

        results = []
        for index in range(batch_size):
            try:
                if resized_sizes is None and target_sizes[index] != padded_size:
                    raise ValueError(
                        f"target size {target_sizes[index]} differs from the padded size {padded_size} but no "
                        "resized_sizes were given: pass inputs=<the processor's output> (or its resized_sizes)"
                    )
                resized_size = padded_size if resized_sizes is None else resized_sizes[index]
                geometry = MaskGeometry.of_masks(low_res_size, resized_size, target_sizes[index])
            except ValueError as error:
                raise ValueError(f"video {index}: {error}") from error
            scores, labels, query_indices = select_instances(
                class_probabilities(class_logits[index]), top_k, threshold
            )
            num_frames, (height, width) = mask_logits.shape[2], geometry.target_size
            masks = torch.zeros(
                (len(query_indices), num_frames, height, width), dtype=torch.bool, device=mask_logits.device
            )
            kept_logits = torch.empty(masks.shape, device=mask_logits.device) if return_mask_logits else None
            for rank, query in enumerate(query_indices.tolist()):
                volume = geometry.upsample(mask_logits[index, query])  # (T, H, W), one query at a time
                masks[rank] = volume > 0
                if return_mask_logits:
                    kept_logits[rank] = volume
            result = {"scores": scores, "labels": labels, "query_indices": query_indices, "masks": masks}
            if return_mask_logits:
                result["mask_logits"] = kept_logits
            results.append(result)
        return results

    @classmethod
    def _output_sizes(
        cls,
        target_sizes: SizesInput | None,
        resized_sizes: SizesInput | None,
        inputs: BatchFeature | dict | None,
        batch_size: int,
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]] | None]:
        """Target and resized sizes per video: as given, else from the processor's output, else `None`."""
        if inputs is not None:
            target_sizes = inputs["original_sizes"] if target_sizes is None else target_sizes
            resized_sizes = inputs["resized_sizes"] if resized_sizes is None else resized_sizes
        if target_sizes is None:
            raise ValueError("pass target_sizes, or inputs=<the processor's output> for the original frame sizes")
        target_sizes = cls._sizes_list(target_sizes, batch_size, "target_sizes")
        if resized_sizes is not None:
            resized_sizes = cls._sizes_list(resized_sizes, batch_size, "resized_sizes")
        return target_sizes, resized_sizes

    @staticmethod
    def _sizes_list(sizes: SizesInput, batch_size: int, name: str) -> list[tuple[int, int]]:
        """(height, width) pairs as a list of int tuples, one per video."""
        sizes = [tuple(int(side) for side in size) for size in (sizes.tolist() if _is_array(sizes) else sizes)]
        if len(sizes) != batch_size or any(len(size) != 2 for size in sizes):
            raise ValueError(f"{name} must hold one (height, width) pair per video ({batch_size}); got {sizes}.")
        return sizes


__all__ = ["RESIZE_BACKENDS", "Mask2FormerVideoProcessor", "get_resize_output_size", "pillow_resize"]
