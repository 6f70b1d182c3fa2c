"""Deployment: the head model exported to ONNX, and ONNX Runtime inference with the package's own pre- and
post-processing.

- `onnx_folder`: the exported folder's files and its manifest (export format version, checked on load);
- `onnx_export`: [`export_onnx_folder`] (`m2f-video export-onnx`) and [`export_model`], with dynamic batch size,
  frames, height and width;
- `onnx_runtime`: [`OnnxVideoInstanceSegmentationModel`], which the inference core runs like the PyTorch model,
  [`load_runtime_model`] (either runtime) and [`load_onnx_pipeline`].

Names are imported when first used, so that importing the package needs neither onnx nor onnxruntime (the
optional `onnx` extra).
"""

from typing import TYPE_CHECKING

from .._lazy import attach

if TYPE_CHECKING:
    from .onnx_export import OnnxExportError, export_model, export_onnx_folder
    from .onnx_folder import FORMAT_VERSION, read_manifest
    from .onnx_runtime import (
        RUNTIMES,
        OnnxVideoInstanceSegmentationModel,
        load_onnx_model,
        load_onnx_pipeline,
        load_runtime_model,
    )

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "onnx_export": ["OnnxExportError", "export_model", "export_onnx_folder"],
        "onnx_folder": ["FORMAT_VERSION", "read_manifest"],
        "onnx_runtime": [
            "RUNTIMES",
            "OnnxVideoInstanceSegmentationModel",
            "load_onnx_model",
            "load_onnx_pipeline",
            "load_runtime_model",
        ],
    },
)
