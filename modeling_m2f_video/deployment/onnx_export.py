"""ONNX export of the video instance segmentation head model (the library behind `m2f-video export-onnx`).

The graph is made by torch's exporter (`torch.export` then `torch.onnx.export`, which translates with
`onnxscript`): input `pixel_values_videos` `(batch_size, num_frames, 3, height, width)` with all four named axes
dynamic; outputs what the inference core reads of the last decoder layer: `class_queries_logits`
`(batch_size, num_queries, num_labels + 1)`, `masks_queries_logits`
`(batch_size, num_queries, num_frames, height / 4, width / 4)` and `transformer_decoder_last_hidden_state`
`(batch_size, num_queries, hidden_dim)`, the query embeddings that clip-by-clip inference matches tracks with.

One graph must hold for every size, so the trace runs in a context made for that ([`_tracing_context`]), during
the export only, leaving the model code as it is: two upstream pixel-decoder steps that turn sizes into values
(`torch.as_tensor` of the feature map sizes, `torch.linspace` with a size as its number of steps) are traced as
graph operations ([`SymbolicSizeOps`]) instead of constants of the example's sizes, and Swin's padded windows are
traced with size-oblivious reasoning and its eager attention. The example input (2 videos of 2 frames, sides from
[`export_sizes`]) has no size of 1 anywhere and pads the Swin maps that can need it, so that the graph is the
general one. Heights and widths must be multiples of 32 (the processor pads to that) and at least 64 (ResNet) or
32·(window + 1) (Swin); the manifest records this and the ONNX Runtime model checks it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.fx.experimental._config
from torch import nn
from torch._dynamo.exc import TorchDynamoException
from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode
from torch.overrides import TorchFunctionMode

from ..conversion.output import staged_output
from ..errors import UserInputError
from ..model_cards import build_model_card
from .onnx_folder import (
    DEFAULT_OPSET,
    EXPORT_DTYPE_NAMES,
    INPUT_AXES,
    INPUT_NAME,
    MANIFEST_FILE,
    MIN_OPSET,
    ONNX_FILE,
    OUTPUT_NAMES,
    package_version,
    require,
    write_manifest,
)

EXPORT_DTYPES = {name: getattr(torch, name) for name in EXPORT_DTYPE_NAMES}
# Heights and widths are multiples of 32 (what the processor pads to: then no branch of the backbone's padding
# depends on the size). Sizes of 1 in the example would be fixed in the graph, so it has B = T = 2 and at least 2 x 2
# maps (ResNet) or windows (Swin) on every level.
SIZE_DIVISIBILITY = 32
RESNET_EXAMPLE_SIDES = (64, 96)
MAX_BATCH_SIZE, MAX_FRAMES, MAX_SIDE = 1024, 100_000, 32_768  # the ranges the trace is valid on
DYNAMIC_AXES = (0, 1, 3, 4)  # of pixel_values_videos: all but the 3 colour channels
CARD_FILE = "README.md"
CARD_SECTION_TITLE = "## ONNX export"


class OnnxExportError(UserInputError):
    """The model cannot be exported to ONNX; the message names the model and the operator or step that failed."""


class _ExportedHead(nn.Module):
    """The exported graph: `pixel_values_videos` in, the last layer's class and mask logits and query embeddings
    out (no auxiliary outputs, hidden states or attentions)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values_videos: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(
            pixel_values_videos=pixel_values_videos,
            output_hidden_states=False,
            output_attentions=False,
            output_auxiliary_logits=False,
            return_dict=True,
        )
        return tuple(getattr(outputs, name) for name in OUTPUT_NAMES)


class SymbolicSizeOps(TorchFunctionMode):
    """While exporting, `torch.as_tensor` / `torch.tensor` of sizes and `torch.linspace` with a size as an argument
    become graph operations on the symbolic sizes, instead of constants of the example's sizes.

    Every other call, and these calls on plain numbers, run unchanged.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.as_tensor, torch.tensor) and args and _has_symbolic(args[0]):
            return _tensor_of_sizes(args[0], kwargs.get("dtype") or torch.int64, kwargs.get("device"))
        if func is torch.linspace and _has_symbolic([*args, *kwargs.values()]):
            return _linspace(*args, **kwargs)
        return func(*args, **kwargs)


def _has_symbolic(data: Any) -> bool:
    """Whether `data` (a number or nested lists of numbers) holds a symbolic size of the trace."""
    if isinstance(data, (list, tuple)):
        return any(_has_symbolic(item) for item in data)
    return isinstance(data, (torch.SymInt, torch.SymFloat))


def _tensor_of_sizes(data: Any, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """`torch.as_tensor(data)` for nested lists of (symbolic) sizes, built from scalars so the trace keeps them."""
    if isinstance(data, (list, tuple)):
        return torch.stack([_tensor_of_sizes(item, dtype, device) for item in data])
    return torch.full((), data, dtype=dtype, device=device)


def _linspace(start, end, steps, *, dtype=None, device=None, **_) -> torch.Tensor:
    """`torch.linspace(start, end, steps)` as `start + i * step`; exact where the step is (the decoder's 0.5,
    1.5, ... reference points)."""
    step = (end - start) / torch.sym_max(steps - 1, 1)
    return torch.arange(steps, dtype=dtype, device=device) * step + start


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
    name: str | None = None,
) -> Path:
    """Export a `Mask2FormerVideoForVideoInstanceSegmentation` (or a module with its forward and outputs) to the
    ONNX file `path`, with dynamic batch size, frames, height and width.

    Args:
        opset: ONNX opset, `MIN_OPSET` or newer (older than `DEFAULT_OPSET` goes through ONNX's version converter).
        dtype: "float32" or "float16" (the weights and the input; float16 is meant for CUDA). `model` is cast to
            it in place.
        name: how error messages name the model (default: the file).

    Raises:
        OnnxExportError: an operator has no ONNX conversion (the message names it), the trace needs a fixed size,
            or the opset could not be reached. Bad `opset` or `dtype` values are `UserInputError`s too.
    """
    check_export_options(opset, dtype)
    name = name or str(path)
    head = _ExportedHead(model).eval().to(EXPORT_DTYPES[dtype])
    sizes = export_sizes(model)
    example = torch.randn(2, 2, 3, *sizes.example_sides, dtype=EXPORT_DTYPES[dtype])
    dynamic_shapes = _dynamic_shapes(sizes.min_side)
    try:
        with _tracing_context(model):
            program = torch.export.export(
                head,
                (example,),
                dynamic_shapes=dynamic_shapes,
                strict=False,
                # Conditions the trace cannot prove for every size (Swin's window arithmetic) are checked at run
                # time by the traced program instead of refusing the export; the ONNX graph drops such checks.
                prefer_deferred_runtime_asserts_over_guards=True,
            )
            _check_axes_stay_dynamic(program, name)
            onnx_program = torch.onnx.export(
                program,
                dynamic_shapes=dynamic_shapes,  # here only to name the graph's axes as the input's
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
    except _EXPORT_ERRORS as error:
        raise OnnxExportError(f"{name}: cannot export to ONNX: {_describe_export_error(error)}") from error
    reached = next(entry.version for entry in onnx_program.model_proto.opset_import if entry.domain in ("", "ai.onnx"))
    if reached != opset:
        raise OnnxExportError(f"--opset {opset}: the model could not be converted to it (it exports at {reached})")
    path = Path(path)
    onnx_program.save(path)
    return path


@contextlib.contextmanager
def _tracing_context(model: nn.Module) -> Iterator[None]:
    """What the trace of every size needs, for the export only:

    - no gradients, and [`SymbolicSizeOps`];
    - size-oblivious reasoning (`backed_size_oblivious`): questions such as "is this size 1?" are answered for
      sizes in general, not from the example, so that the strides of Swin's padded window maps are provable for
      every size;
    - the eager attention in a Swin backbone (same numbers as its SDPA path): the exporter re-traces the graph,
      and there SDPA's output gets other strides than in the first trace, which Swin's reshape of it then fails on.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(torch.fx.experimental._config.patch(backed_size_oblivious=True))
        stack.enter_context(_eager_swin_attention(model))
        stack.enter_context(SymbolicSizeOps())
        yield


@contextlib.contextmanager
def _eager_swin_attention(model: nn.Module) -> Iterator[None]:
    """The Swin backbone of `model`, if it has one, on its eager attention; its own setting back afterwards."""
    backbone = getattr(getattr(getattr(model, "model", None), "pixel_level_module", None), "encoder", None)
    if backbone is None or getattr(backbone.config, "model_type", None) != "swin":
        yield
        return
    previous = backbone.config._attn_implementation
    backbone.set_attn_implementation("eager")
    try:
        yield
    finally:
        backbone.set_attn_implementation(previous)


def _check_axes_stay_dynamic(program: torch.export.ExportedProgram, name: str) -> None:
    """Refuse a trace that fixed an input axis to the example's size (an operation made a constant of it)."""
    (placeholder,) = [node for node in program.graph.nodes if node.op == "placeholder" and node.name == INPUT_NAME]
    shape = placeholder.meta["val"].shape
    fixed = [f"{INPUT_AXES[axis]} = {shape[axis]}" for axis in DYNAMIC_AXES if isinstance(shape[axis], int)]
    if fixed:
        raise OnnxExportError(f"{name}: cannot export to ONNX with dynamic sizes: the trace fixed {', '.join(fixed)}")


def check_export_options(opset: int, dtype: str) -> None:
    """Refuse an opset the graph cannot use (GridSample needs 16) or the installed `onnx` does not know, and an
    unknown dtype, naming the option."""
    require("export-onnx", "onnx", "onnxscript")
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= newest:
        raise UserInputError(
            f"--opset {opset}: must be between {MIN_OPSET} (GridSample, used by the deformable attention of the "
            f"pixel decoder, needs it) and {newest} (the newest the installed onnx knows)"
        )
    if dtype not in EXPORT_DTYPES:
        raise UserInputError(f"--dtype {dtype}: must be one of {', '.join(EXPORT_DTYPES)}")


def _dynamic_shapes(min_side: int) -> dict[str, dict[int, Any]]:
    """The four dynamic axes of `pixel_values_videos`, named as in the ONNX graph, with their ranges."""
    ranges = {
        "batch_size": (1, MAX_BATCH_SIZE),
        "num_frames": (1, MAX_FRAMES),
        "height": (min_side, MAX_SIDE),
        "width": (min_side, MAX_SIDE),
    }
    dims = {name: torch.export.Dim(name, min=low, max=high) for name, (low, high) in ranges.items()}
    return {INPUT_NAME: {axis: dims[INPUT_AXES[axis]] for axis in DYNAMIC_AXES}}


@dataclass(frozen=True)
class ExportSizes:
    """The frame size of the export example, and the smallest height and width the graph holds for."""

    example_sides: tuple[int, int]
    min_side: int


def export_sizes(model: nn.Module) -> ExportSizes:
    """The example and smallest frame sides for the backbone of `model` (multiples of 32).

    ResNet: 64 x 96 (maps of 2 x 3 on the coarsest level), graph valid from 64 on. Swin with window w: every level
    must have at least two windows each way and, on the levels whose map a size can leave unpadded or not, a map
    that is padded (so that the trace keeps the crop after the padding): sides 32·m for the two smallest m > w that
    pad those levels; valid from 32·(w + 1) on (two windows on the coarsest level).
    """
    backbone = getattr(getattr(model, "config", None), "backbone_config", None)
    if getattr(backbone, "model_type", None) != "swin":
        return ExportSizes(RESNET_EXAMPLE_SIDES, RESNET_EXAMPLE_SIDES[0])
    window = backbone.window_size
    # Level l's map is (32 / 4 / 2^l) * m = factor * m for l = 0..3; it can need padding when window ∤ factor.
    factors = [factor for factor in (8, 4, 2, 1) if factor % window]
    multiples = (m for m in itertools.count(window + 1) if all(factor * m % window for factor in factors))
    height_multiple, width_multiple = next(multiples), next(multiples)
    return ExportSizes((32 * height_multiple, 32 * width_multiple), 32 * (window + 1))


# What torch's exporter raises for a model it cannot export: no ONNX conversion for an operator (step 3), a
# trace that needs fixed sizes (step 1), data-dependent control flow.
_EXPORT_ERRORS = (torch.onnx.OnnxExporterError, TorchDynamoException, GuardOnDataDependentSymNode)
_MISSING_OPERATOR = re.compile(r"No ONNX function found for <OpOverload\(op='(?P<op>[^']+)'")
_FAILED_NODE = re.compile(r"Error when translating node .*?target=torch\.ops\.(?P<op>[\w.]+?)(?:\.default)?\]")


def _describe_export_error(error: BaseException) -> str:
    """What went wrong, in one line: the operator without an ONNX conversion, the operator whose translation
    failed (with the innermost error), or the exporter's first line."""
    chain = [error]
    while chain[-1].__cause__ is not None and chain[-1].__cause__ not in chain:
        chain.append(chain[-1].__cause__)
    text = "\n".join(str(item) for item in chain)
    missing = _MISSING_OPERATOR.search(text)
    if missing:
        return f"the operator {missing['op']} has no ONNX conversion in torch's exporter"
    failed = _FAILED_NODE.search(text)
    if failed:
        return f"translating the operator {failed['op']} failed: {_first_line(chain[-1])}"
    return _first_line(chain[0])


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def export_onnx_folder(
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
    overwrite: bool = False,
) -> Path:
    """Export the model folder `model_dir` into the folder `output`: `model.onnx`, `config.json`, the video
    processor config, the card (`README.md`, the model's card with an ONNX section) and the manifest.

    The folder is written aside and renamed into place, so a failed export leaves `output` as it was. Returns
    `output`. Raises `UserInputError` for an unusable `model_dir`, `output` or option, `OnnxExportError` when the
    model cannot be exported.
    """
    from ..modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
    from ..pipeline_video_instance_segmentation import load_video_processor

    check_export_options(opset, dtype)
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise UserInputError(f"{model_dir}: not a model folder (it has no config.json)")
    try:
        processor = load_video_processor(model_dir)
        model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        message = str(error).removeprefix(f"{model_dir}: ")
        raise UserInputError(f"{model_dir}: cannot load the model: {message}") from error
    min_side = export_sizes(model).min_side
    with staged_output(output, overwrite=overwrite, inputs=[model_dir], error=UserInputError) as staging:
        export_model(model, staging / ONNX_FILE, opset=opset, dtype=dtype, name=str(model_dir))
        model.config.save_pretrained(staging)
        processor.save_pretrained(staging)
        write_manifest(
            staging,
            opset=opset,
            dtype=dtype,
            torch_version=torch.__version__,
            min_side=min_side,
            size_divisibility=SIZE_DIVISIBILITY,
        )
        write_card(staging, model_dir, model.config, opset=opset, dtype=dtype, min_side=min_side)
    return Path(output)


def write_card(folder: Path, model_dir: Path, config, *, opset: int, dtype: str, min_side: int) -> Path:
    """`folder/README.md`: the card of `model_dir` (or a new one) with a section on the export and its use."""
    source = model_dir / CARD_FILE
    if source.is_file():
        card = source.read_text(encoding="utf-8")
    else:
        card = str(build_model_card(config, how_made=f"Exported from `{model_dir.name}` to ONNX."))
    path = folder / CARD_FILE
    path.write_text(card.rstrip() + "\n\n" + card_section(opset, dtype, min_side), encoding="utf-8")
    return path


def card_section(opset: int, dtype: str, min_side: int) -> str:
    """The card's section on the ONNX export: what the folder holds and how to run it."""
    return f"""{CARD_SECTION_TITLE}

This folder holds the model exported to ONNX (`{ONNX_FILE}`, opset {opset}, {dtype}) by m2f-video
{package_version()} with `m2f-video export-onnx`, with its `config.json`, video processor config and
`{MANIFEST_FILE}` (the export format version, checked when the folder is loaded). It has no PyTorch weights: the
usage above needs the original model folder; this one runs with ONNX Runtime, with the same pre- and
post-processing.

- input `{INPUT_NAME}`: `(batch_size, num_frames, 3, height, width)`, {dtype}, as the video processor makes it;
  every axis is dynamic; height and width multiples of 32 (the processor pads them so) and at least {min_side};
- outputs `{OUTPUT_NAMES[0]}` `(batch_size, num_queries, num_labels + 1)`, `{OUTPUT_NAMES[1]}`
  `(batch_size, num_queries, num_frames, height / 4, width / 4)` and `{OUTPUT_NAMES[2]}`
  `(batch_size, num_queries, hidden_dim)` (the query embeddings clip-by-clip inference tracks with).

```bash
m2f-video predict video.mp4 --model THIS_FOLDER --runtime onnx --output predictions/
```

```python
from modeling_m2f_video.deployment import load_onnx_pipeline

segmenter = load_onnx_pipeline("THIS_FOLDER")  # CUDA when onnxruntime-gpu has it, else the CPU
instances = segmenter("video.mp4")
```
"""


__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_DTYPES",
    "MIN_OPSET",
    "SIZE_DIVISIBILITY",
    "ExportSizes",
    "OnnxExportError",
    "SymbolicSizeOps",
    "card_section",
    "check_export_options",
    "export_model",
    "export_onnx_folder",
    "export_sizes",
]
