"""ONNX Runtime inference: an exported folder run where the PyTorch model would be, with the same post-processing.

[`OnnxVideoInstanceSegmentationModel`] has what the inference core (`inference.segment.segment_video`, whole or
clip by clip) and the pipeline read from the PyTorch model: calling it with `pixel_values_videos` returns an output
object with `class_queries_logits`, `masks_queries_logits` and `transformer_decoder_last_hidden_state`, and it has
`config`, `device` and `dtype`. So the instances come out of the very code the PyTorch model's go through.
[`load_runtime_model`] loads either runtime's model from a folder, [`load_onnx_pipeline`] builds the
`video-instance-segmentation` pipeline on an exported folder.

Tensors go in and come out on the CPU (`device` is the CPU); the execution provider, CUDA or CPU, is chosen by
the `device` argument of the loaders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..configuration import Mask2FormerVideoConfig
from ..errors import UserInputError
from ..modeling_m2f_video import (
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoForVideoInstanceSegmentationOutput,
)
from ..pipeline_video_instance_segmentation import TASK, VideoInstanceSegmentationPipeline, load_video_processor
from .onnx_folder import INPUT_NAME, ONNX_FILE, OUTPUT_NAMES, read_manifest, require

RUNTIMES = ("torch", "onnx")
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class OnnxVideoInstanceSegmentationModel:
    """An exported folder's `model.onnx` in an ONNX Runtime session, called like the PyTorch head model.

    Args:
        folder: the exported folder (see `onnx_folder`), already checked by `read_manifest`.
        session: the `onnxruntime.InferenceSession` of its ONNX file.
        config: the model's config (labels and `test_top_k`, read by post-processing).
        dtype: the dtype the model was exported in (inputs are cast to it).
        min_side, size_divisibility: the input heights and widths the graph holds for (the manifest's).
    """

    main_input_name = INPUT_NAME
    input_modalities = ("video",)

    def __init__(
        self,
        folder: Path,
        session: Any,
        config: Mask2FormerVideoConfig,
        dtype: torch.dtype,
        min_side: int = 64,
        size_divisibility: int = 32,
    ):
        self.folder = folder
        self.session = session
        self.config = config
        self.dtype = dtype
        self.min_side = min_side
        self.size_divisibility = size_divisibility
        self.device = torch.device("cpu")  # where inputs and outputs live; the provider may be CUDA
        self.name_or_path = str(folder)

    @property
    def providers(self) -> list[str]:
        """The execution providers of the session, in order of preference."""
        return self.session.get_providers()

    def __call__(
        self, pixel_values_videos: torch.Tensor, frame_chunk_size: int | None = None
    ) -> Mask2FormerVideoForVideoInstanceSegmentationOutput:
        """Run the graph on `pixel_values_videos` `(batch_size, num_frames, 3, height, width)`.

        `frame_chunk_size` is accepted for the inference core's sake and not used: the graph runs all frames at
        once (chunking only bounds the PyTorch model's memory; its outputs are the same). An input the runtime
        refuses (wrong rank, channels or dtype) is a [`UserInputError`] naming `pixel_values_videos`, and so is a
        height or width the graph does not hold for (not a multiple of 32, as the processor pads, or under
        `min_side`).
        """
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        array = _as_array(pixel_values_videos, self.dtype)
        if array.ndim == 5:
            self._check_frame_size(array.shape[-2:])
        try:
            arrays = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: array})
        except InvalidArgument as error:
            raise UserInputError(_input_error_message(array, error)) from error
        # class_queries_logits (B, Q, K + 1), masks_queries_logits (B, Q, T, H/4, W/4),
        # transformer_decoder_last_hidden_state (B, Q, C)
        return Mask2FormerVideoForVideoInstanceSegmentationOutput(
            **{name: torch.from_numpy(output) for name, output in zip(OUTPUT_NAMES, arrays)}
        )

    def _check_frame_size(self, size: tuple[int, int]) -> None:
        """Refuse a height or width the exported graph does not hold for."""
        if any(side < self.min_side or side % self.size_divisibility for side in size):
            raise UserInputError(
                f"{INPUT_NAME}: height and width must be multiples of {self.size_divisibility} and at least "
                f"{self.min_side} (the processor pads frames so); got {size[0]} x {size[1]}"
            )

    def eval(self) -> OnnxVideoInstanceSegmentationModel:
        """Nothing to switch: the graph is the inference graph. Returns the model, as `nn.Module.eval` does."""
        return self

    def can_generate(self) -> bool:
        """Not a generative model (transformers' pipelines ask)."""
        return False


def _as_array(pixel_values_videos: Any, dtype: torch.dtype) -> np.ndarray:
    """The input as a contiguous NumPy array of the export's dtype."""
    tensor = torch.as_tensor(pixel_values_videos).detach().to("cpu", dtype)
    return np.ascontiguousarray(tensor.numpy())


def _input_error_message(array: np.ndarray, error: Exception) -> str:
    """Our message for an input ONNX Runtime refuses: what the input should be, what it is, then the runtime's
    words."""
    runtime_message = str(error).split(" : ", 2)[-1].strip()
    if array.ndim != 5:
        problem = f"got {array.ndim} dimensions {tuple(array.shape)}"
    else:
        problem = f"got shape {tuple(array.shape)}, {array.dtype}"
    return (
        f"{INPUT_NAME}: must have shape (batch_size, num_frames, 3, height, width); {problem} "
        f"(ONNX Runtime: {runtime_message})"
    )


def load_onnx_model(folder: str | os.PathLike, device: str | None = None) -> OnnxVideoInstanceSegmentationModel:
    """The model of an exported folder in an ONNX Runtime session.

    Args:
        folder: a folder written by `m2f-video export-onnx` (its manifest is checked first).
        device: "cpu", "cuda" or "cuda:N" (the execution provider); default CUDA when this onnxruntime has it
            (the `onnxruntime-gpu` package), else the CPU.
    """
    require("--runtime onnx", "onnxruntime")
    import onnxruntime

    folder = Path(folder)
    manifest = read_manifest(folder)
    config = Mask2FormerVideoConfig.from_pretrained(folder)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: the runtime's warnings about reused buffers are noise here
    try:
        session = onnxruntime.InferenceSession(
            str(folder / ONNX_FILE), sess_options=options, providers=execution_providers(device)
        )
    except Exception as error:  # onnxruntime's error classes are not exported under stable names
        raise UserInputError(f"{folder / ONNX_FILE}: ONNX Runtime cannot load it: {error}") from error
    return OnnxVideoInstanceSegmentationModel(
        folder, session, config, getattr(torch, manifest["dtype"]), manifest["min_side"], manifest["size_divisibility"]
    )


def execution_providers(device: str | None) -> list:
    """ONNX Runtime providers for `device` ("cpu", "cuda", "cuda:N"; None: CUDA when available, else the CPU)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device is None:
        device = "cuda" if CUDA_PROVIDER in available else "cpu"
    kind, _, index = str(device).partition(":")
    if kind == "cpu":
        return [CPU_PROVIDER]
    if kind != "cuda" or not (index == "" or index.isdigit()):
        raise UserInputError(f"--device {device}: ONNX Runtime runs on cpu, cuda or cuda:N")
    if CUDA_PROVIDER not in available:
        raise UserInputError(
            f"--device {device}: this onnxruntime has no CUDA execution provider (available: {', '.join(available)}); "
            "install onnxruntime-gpu, or use --device cpu"
        )
    return [(CUDA_PROVIDER, {"device_id": int(index or 0)}), CPU_PROVIDER]


def load_runtime_model(
    model_path: str | os.PathLike, runtime: str = "torch", device: str | None = None, dtype: str | None = None
) -> Mask2FormerVideoForVideoInstanceSegmentation | OnnxVideoInstanceSegmentationModel:
    """The model `segment_video` runs, from a model folder (`runtime="torch"`) or an exported one (`"onnx"`).

    `dtype` is the PyTorch model's dtype; an ONNX model keeps the dtype it was exported in, so there it may only
    name that one.
    """
    if runtime not in RUNTIMES:
        raise UserInputError(f"--runtime {runtime}: must be one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        model = load_onnx_model(model_path, device)
        if dtype is not None and getattr(torch, dtype, None) is not model.dtype:
            raise UserInputError(
                f"--dtype {dtype}: {model_path} was exported in {str(model.dtype).removeprefix('torch.')}; export it "
                f"again with `m2f-video export-onnx --dtype {dtype}` or leave --dtype out"
            )
        return model
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(
        model_path, dtype=getattr(torch, dtype) if dtype else None
    )
    return model.to(device or "cpu").eval()


def load_onnx_pipeline(
    folder: str | os.PathLike, device: str | None = None, dtype: str | None = None
) -> VideoInstanceSegmentationPipeline:
    """The `video-instance-segmentation` pipeline on an exported folder: same call options and results as on the
    PyTorch model folder, the network run by ONNX Runtime (`device` and `dtype` as in [`load_runtime_model`])."""
    model = load_runtime_model(folder, "onnx", device, dtype)
    return VideoInstanceSegmentationPipeline(
        model=model, video_processor=load_video_processor(folder), device=model.device, task=TASK
    )


__all__ = [
    "RUNTIMES",
    "OnnxVideoInstanceSegmentationModel",
    "execution_providers",
    "load_onnx_model",
    "load_onnx_pipeline",
    "load_runtime_model",
]
