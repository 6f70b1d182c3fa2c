"""A minimal model card (README.md) for converted folders.

A shared model-card helper may replace this later; the signature is meant to stay.
"""

from pathlib import Path

from modeling_m2f_video.configuration import Mask2FormerVideoConfig

DATASET_NAMES = {"ytvis2019": "YouTube-VIS 2019", "ytvis2021": "YouTube-VIS 2021"}


def _architecture_lines(config: Mask2FormerVideoConfig) -> list[str]:
    backbone = config.backbone_config
    if backbone.model_type == "swin":
        backbone_text = (
            f"Swin (embed_dim {backbone.embed_dim}, depths {list(backbone.depths)}, window {backbone.window_size}, "
            f"official small-window padding: {config.swin_pad_small_windows})"
        )
    else:
        backbone_text = f"ResNet (depths {list(backbone.depths)}, widths {list(backbone.hidden_sizes)})"
    return [
        f"- backbone: {backbone_text}",
        f"- pixel decoder: {config.encoder_layers} deformable-attention layers, {config.feature_size} channels",
        f"- transformer decoder: {config.decoder_layers - 1} masked-attention layers, {config.num_queries} queries, "
        f"hidden size {config.hidden_dim}",
        f"- classes: {config.num_labels}",
    ]


def write_model_card(
    output_dir: str | Path,
    *,
    config: Mask2FormerVideoConfig,
    source: str,
    dataset: str | None = None,
    notes: tuple[str, ...] = (),
) -> Path:
    """Write `output_dir/README.md` describing a converted model: where it came from, its architecture, usage.

    Args:
        output_dir: the converted model folder.
        config: the converted model's config.
        source: one line saying what was converted (file names, hub id).
        dataset: `"ytvis2019"` / `"ytvis2021"` when the labels are those of a YouTube-VIS dataset.
        notes: extra lines (e.g. "class head re-initialised").
    """
    dataset_text = DATASET_NAMES.get(dataset, dataset) if dataset else "not specified"
    lines = [
        "---",
        "library_name: transformers",
        "tags:",
        "- video-instance-segmentation",
        "- mask2former",
        "---",
        "",
        "# Mask2Former for video instance segmentation (converted)",
        "",
        f"Converted from {source} with `m2f-video convert`.",
        f"Label set: {dataset_text}.",
        "",
        "## Architecture",
        "",
        *_architecture_lines(config),
        *(f"- {note}" for note in notes),
        "",
        "## Usage",
        "",
        "```python",
        "import modeling_m2f_video",
        "from transformers import pipeline",
        "",
        'pipe = pipeline("video-instance-segmentation", model="path/to/this/folder")',
        "```",
        "",
    ]
    path = Path(output_dir) / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
