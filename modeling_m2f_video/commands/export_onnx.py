"""`m2f-video export-onnx`: export a model folder to ONNX, for ONNX Runtime (see `deployment.onnx_export`).

m2f-video export-onnx MODEL_DIR --output DIR [--opset N] [--dtype float32|float16] [--overwrite]

The exported folder runs with `m2f-video predict ... --model DIR --runtime onnx`.
"""

from __future__ import annotations

import argparse

from ..deployment.onnx_folder import DEFAULT_OPSET, EXPORT_DTYPE_NAMES, MIN_OPSET


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `export-onnx` subcommand."""
    parser = subparsers.add_parser(
        "export-onnx",
        help="export a model folder to ONNX (model.onnx, config and processor) for ONNX Runtime",
        description=(
            "Export the model of MODEL_DIR to DIR/model.onnx with torch's ONNX exporter: input "
            "pixel_values_videos (batch_size, num_frames, 3, height, width) with dynamic batch size, frames, height "
            "and width; outputs class_queries_logits and masks_queries_logits. DIR also gets config.json, the video "
            "processor config, the model card with an ONNX section and onnx_export.json (the export format "
            "version). Run it with `m2f-video predict ... --model DIR --runtime onnx`."
        ),
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model folder (save_pretrained), or 'demo'")
    parser.add_argument("--output", required=True, help="folder to write (absent or empty)")
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET} or newer (default {DEFAULT_OPSET})"
    )
    parser.add_argument(
        "--dtype",
        choices=EXPORT_DTYPE_NAMES,
        default=EXPORT_DTYPE_NAMES[0],
        help="weights and input dtype (default float32; float16 is for CUDA)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing exported folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print where the folder is; bad input is a `UserInputError` for the CLI to report."""
    from ..demo import resolve_model_path
    from ..deployment import export_onnx_folder

    output = export_onnx_folder(
        resolve_model_path(args.model_dir), args.output, opset=args.opset, dtype=args.dtype, overwrite=args.overwrite
    )
    print(f"ONNX model written to {output}; run it with: m2f-video predict VIDEO --model {output} --runtime onnx")
    return 0
