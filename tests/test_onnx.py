"""ONNX export and ONNX Runtime inference: the exported graph gives the PyTorch model's outputs at sizes it was not
exported at, the inference core and the pipeline give identical instances with either runtime, and bad folders,
options, operators and inputs are refused with clear errors.

Exported here: the shipped demo model (a tiny trained ResNet, through the CLI), a tiny random Swin model and, in
the slow tests, the converted official fixtures (slim ResNet-50 and Swin). The example input of every export is
2 videos of 2 frames of 64 x 96 (ResNet) or larger (Swin: `onnx_export.export_sizes`); `unseen_shapes` are other
sizes, from the smallest the export holds for.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from conftest import FIXTURES, tiny_config

from modeling_m2f_video import (
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoForVideoInstanceSegmentationOutput,
)
from modeling_m2f_video.cli import main
from modeling_m2f_video.demo import DEMO_MODEL_DIR, demo_video
from modeling_m2f_video.deployment import (
    OnnxExportError,
    export_model,
    export_onnx_folder,
    load_onnx_model,
    load_onnx_pipeline,
    load_runtime_model,
)
from modeling_m2f_video.deployment.onnx_folder import MANIFEST_FILE, OUTPUT_NAMES
from modeling_m2f_video.errors import UserInputError
from modeling_m2f_video.inference.segment import segment_video
from modeling_m2f_video.pipeline_video_instance_segmentation import VideoInstanceSegmentationPipeline
from modeling_m2f_video.processing.post_processing import class_probabilities, select_instances
from modeling_m2f_video.processing.video_io import write_video
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

# Class and mask logits and query embeddings: within 1e-4, relative to the value beyond 1 (the trained demo model's
# mask logits reach 200, where float32 steps are 1.5e-5 and PyTorch itself differs by 4e-5 between batch sizes).
TOLERANCE = 1e-4
TOP_K = 10
CUDA = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> Path:
    """The demo model exported by the CLI."""
    output = tmp_path_factory.mktemp("demo") / "onnx"
    assert main(["export-onnx", "demo", "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def demo_model() -> Mask2FormerVideoForVideoInstanceSegmentation:
    return Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(DEMO_MODEL_DIR).eval()


@pytest.fixture(scope="module")
def swin_export(tmp_path_factory) -> tuple[Mask2FormerVideoForVideoInstanceSegmentation, Path]:
    """A tiny random Swin model and its export."""
    torch.manual_seed(0)
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config("swin", num_labels=3)).eval()
    model_dir = tmp_path_factory.mktemp("swin") / "model"
    model.save_pretrained(model_dir)
    Mask2FormerVideoProcessor.from_model_config(model.config).save_pretrained(model_dir)
    return model, export_onnx_folder(model_dir, model_dir.parent / "onnx")


def assert_same_outputs(torch_model, onnx_model, pixel_values_videos: torch.Tensor) -> None:
    """Class and mask logits and query embeddings within `TOLERANCE`, and the same top-10 (query, label) pairs for
    every video."""
    with torch.no_grad():
        expected = torch_model(pixel_values_videos=pixel_values_videos)
    actual = onnx_model(pixel_values_videos=pixel_values_videos)
    for name in OUTPUT_NAMES:
        torch.testing.assert_close(getattr(actual, name), getattr(expected, name), atol=TOLERANCE, rtol=TOLERANCE)
    for video in range(pixel_values_videos.shape[0]):
        top = [
            select_instances(class_probabilities(outputs.class_queries_logits[video]), TOP_K, 0.0)
            for outputs in (actual, expected)
        ]
        torch.testing.assert_close(top[0][0], top[1][0], atol=1e-5, rtol=0)  # scores
        assert top[0][1].tolist() == top[1][1].tolist()  # labels
        assert top[0][2].tolist() == top[1][2].tolist()  # query indices


def unseen_shapes(min_side: int) -> list[tuple[int, int, int, int]]:
    """(batch_size, num_frames, height, width) unlike the export example's (2, 2, ...), down to `min_side`."""
    return [(1, 3, min_side + 32, min_side + 64), (1, 1, min_side + 64, min_side), (3, 5, min_side, min_side + 96)]


def random_input(batch_size: int, num_frames: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(batch_size * 1000 + num_frames * 100 + height + width)
    return torch.randn(batch_size, num_frames, 3, height, width, generator=generator)


def assert_same_instances(first, second) -> None:
    """Two `VideoInstances`: same labels, queries (or tracks) and per-frame masks; scores within 1e-5."""
    assert first.labels.tolist() == second.labels.tolist()
    assert first.query_indices.tolist() == second.query_indices.tolist()
    np.testing.assert_allclose(first.scores, second.scores, atol=1e-5, rtol=0)
    for index in range(len(first)):
        assert first.segmentations(index, keep_empty=True) == second.segmentations(index, keep_empty=True)


# ------------------------------------------------------------------------------------------ the exported folder


def test_export_folder_has_the_model_its_config_processor_card_and_manifest(demo_export):
    assert {path.name for path in demo_export.iterdir()} == {
        "model.onnx",
        "config.json",
        "video_preprocessor_config.json",
        "README.md",
        MANIFEST_FILE,
    }
    manifest = json.loads((demo_export / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == 1 and manifest["opset"] == 18 and manifest["dtype"] == "float32"
    card = (demo_export / "README.md").read_text()
    assert card.startswith((DEMO_MODEL_DIR / "README.md").read_text().rstrip())  # the model's card, then ours
    assert "## ONNX export" in card and "--runtime onnx" in card


def test_graph_has_one_input_with_dynamic_batch_frames_height_and_width(demo_export):
    graph = onnx.load(demo_export / "model.onnx").graph
    (graph_input,) = graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "pixel_values_videos"
    assert [dim.dim_param or dim.dim_value for dim in dims] == ["batch_size", "num_frames", 3, "height", "width"]
    assert [output.name for output in graph.output] == [
        "class_queries_logits",
        "masks_queries_logits",
        "transformer_decoder_last_hidden_state",
    ]
    assert any(node.op_type == "GridSample" for node in graph.node)  # the deformable attention


# --------------------------------------------------------------------------------------- parity with PyTorch


@pytest.mark.parametrize("which", range(3))
def test_demo_model_matches_pytorch_at_sizes_not_seen_at_export(demo_export, demo_model, which):
    onnx_model = load_onnx_model(demo_export, device="cpu")
    assert onnx_model.min_side == 64
    assert_same_outputs(demo_model, onnx_model, random_input(*unseen_shapes(64)[which]))


@pytest.mark.parametrize("which", range(3))
def test_swin_model_matches_pytorch_at_sizes_not_seen_at_export(swin_export, which):
    model, folder = swin_export
    onnx_model = load_onnx_model(folder, device="cpu")
    assert onnx_model.min_side == 32 * (model.config.backbone_config.window_size + 1)
    assert_same_outputs(model, onnx_model, random_input(*unseen_shapes(onnx_model.min_side)[which]))


@pytest.mark.parametrize("mode", ["whole", "clip"])
def test_segment_video_gives_identical_instances_on_the_demo_video(demo_export, mode):
    video = demo_video(None, num_frames=12, height=96, width=128, num_classes=2).frames
    processor = Mask2FormerVideoProcessor.from_pretrained(demo_export)
    runs = [
        segment_video(load_runtime_model(folder, runtime), processor, video, mode=mode, clip_length=5, clip_overlap=2)
        for folder, runtime in ((DEMO_MODEL_DIR, "torch"), (demo_export, "onnx"))
    ]
    assert len(runs[0]) > 0
    assert_same_instances(*runs)


def test_pipeline_on_an_exported_folder_gives_the_pytorch_pipelines_instances(demo_export, demo_model):
    video = demo_video(None, num_frames=6, height=96, width=128, num_classes=2).frames
    onnx_segmenter = load_onnx_pipeline(demo_export, device="cpu")
    torch_segmenter = VideoInstanceSegmentationPipeline(
        model=demo_model, video_processor=Mask2FormerVideoProcessor.from_pretrained(DEMO_MODEL_DIR), device="cpu"
    )
    first, second = (segmenter(video, top_k=5, return_rle=True) for segmenter in (onnx_segmenter, torch_segmenter))
    assert [i["label_id"] for i in first] == [i["label_id"] for i in second]
    np.testing.assert_allclose([i["score"] for i in first], [i["score"] for i in second], atol=1e-5, rtol=0)
    assert [i["masks"] for i in first] == [i["masks"] for i in second]


def test_predict_with_the_onnx_runtime_writes_the_pytorch_results(demo_export, tmp_path):
    video = tmp_path / "demo.mp4"
    write_video(video, demo_video(None, num_frames=6, height=96, width=128, num_classes=2).frames)
    results = {}
    for runtime, model in (("torch", "demo"), ("onnx", str(demo_export))):
        output = tmp_path / runtime
        argv = ["predict", str(video), "--model", model, "--output", str(output), "--runtime", runtime]
        assert main([*argv, "--top-k", "5", "--no-progress", "--no-pictures"]) == 0
        results[runtime] = json.loads((output / "results.json").read_text())
    assert len(results["torch"]) == 5
    assert [r["segmentations"] for r in results["onnx"]] == [r["segmentations"] for r in results["torch"]]
    assert [r["category_id"] for r in results["onnx"]] == [r["category_id"] for r in results["torch"]]
    np.testing.assert_allclose(
        [r["score"] for r in results["onnx"]], [r["score"] for r in results["torch"]], atol=1e-5, rtol=0
    )


def test_predict_names_the_runtime_an_exported_folder_needs(demo_export, tmp_path, capsys):
    video = tmp_path / "demo.mp4"
    write_video(video, demo_video(None, num_frames=2, height=64, width=64, num_classes=2).frames)
    assert main(["predict", str(video), "--model", str(demo_export), "--output", str(tmp_path / "out")]) == 2
    assert f"error: {demo_export}: an exported ONNX folder; run it with --runtime onnx" in capsys.readouterr().err
    assert main(["predict", str(video), "--model", "demo", "--output", str(tmp_path / "o"), "--runtime", "onnx"]) == 2
    assert "not an exported ONNX folder (it has no onnx_export.json)" in capsys.readouterr().err


def test_float16_export_runs_close_to_the_float32_model(demo_model, tmp_path):
    folder = export_onnx_folder(DEMO_MODEL_DIR, tmp_path / "fp16", dtype="float16")
    assert json.loads((folder / MANIFEST_FILE).read_text())["dtype"] == "float16"
    model = load_runtime_model(folder, "onnx", device="cpu")
    assert model.dtype == torch.float16
    pixel_values_videos = random_input(1, 3, 96, 128)
    actual = model(pixel_values_videos=pixel_values_videos)
    with torch.no_grad():
        expected = demo_model(pixel_values_videos=pixel_values_videos)
    for name in ("class_queries_logits", "masks_queries_logits"):
        reference = getattr(expected, name)
        difference = (getattr(actual, name).float() - reference).abs().max()
        assert difference <= 2e-3 * reference.abs().max(), name  # float16 steps are 1e-3 of the value
    with pytest.raises(UserInputError, match=r"--dtype float32: .* was exported in float16"):
        load_runtime_model(folder, "onnx", dtype="float32")


@pytest.mark.skipif(not CUDA, reason="onnxruntime has no CUDA execution provider here")
def test_cuda_execution_provider_matches_pytorch(demo_export, demo_model):
    model = load_onnx_model(demo_export, device="cuda")
    assert model.providers[0] == "CUDAExecutionProvider"
    assert_same_outputs(demo_model, model, random_input(*unseen_shapes(64)[0]))


@pytest.fixture(scope="module", params=["r50_slim", "swin_slim"])
def official_export(request, tmp_path_factory):
    """An official fixture converted (as in test_parity_official) and exported; its model and its input."""
    from modeling_m2f_video.conversion import convert_official_checkpoint

    fixture = FIXTURES / "official" / request.param
    folder = tmp_path_factory.mktemp(request.param)
    model_dir = convert_official_checkpoint(
        fixture / "config.yaml", fixture / "model_final.pkl", folder / "model", "ytvis2019"
    )
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir).eval()
    video = np.load(fixture / "input.npz")
    inputs = Mask2FormerVideoProcessor.from_pretrained(model_dir)(
        video["frames"], do_resize=False, return_tensors="pt"
    )
    return model, export_onnx_folder(model_dir, folder / "onnx"), inputs["pixel_values_videos"]


@pytest.mark.slow
def test_official_fixtures_match_pytorch_on_their_video_and_at_other_sizes(official_export):
    model, folder, fixture_input = official_export
    onnx_model = load_onnx_model(folder, device="cpu")
    if min(fixture_input.shape[-2:]) >= onnx_model.min_side:
        assert_same_outputs(model, onnx_model, fixture_input)
    else:  # the Swin fixture's 128 x 160 frames are smaller than its export holds for (window 7: from 256 on)
        with pytest.raises(UserInputError, match=r"at least 256 .*; got 128 x 160"):
            onnx_model(pixel_values_videos=fixture_input)
    for shape in unseen_shapes(onnx_model.min_side)[:2]:
        assert_same_outputs(model, onnx_model, random_input(*shape))


# ----------------------------------------------------------------------------------------------- bad input


def test_a_folder_exported_in_another_format_version_is_refused(demo_export, tmp_path):
    folder = shutil.copytree(demo_export, tmp_path / "old")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "format_version": 0, "m2f_video_version": "0.0.1"}))
    with pytest.raises(UserInputError, match=r"old: exported by m2f-video 0\.0\.1 in ONNX export format 0; .*export"):
        load_onnx_model(folder)


def test_a_manifest_with_an_unknown_dtype_is_refused(demo_export, tmp_path):
    folder = shutil.copytree(demo_export, tmp_path / "odd")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "dtype": "int4"}))
    with pytest.raises(UserInputError, match=r"onnx_export.json: dtype 'int4' is not one of float32, float16"):
        load_onnx_model(folder)


def test_a_pytorch_model_folder_is_not_an_export(tmp_path):
    with pytest.raises(
        UserInputError, match=r"demo_model: not an exported ONNX folder \(it has no onnx_export.json\)"
    ):
        load_onnx_model(DEMO_MODEL_DIR)
    assert main(["export-onnx", str(tmp_path / "missing"), "--output", str(tmp_path / "out")]) == 2


def test_wrong_input_rank_is_our_error_not_the_runtimes(demo_export):
    model = load_onnx_model(demo_export, device="cpu")
    with pytest.raises(UserInputError, match=r"pixel_values_videos: must have shape .* got 4 dimensions \(2, 3, 64, "):
        model(pixel_values_videos=torch.zeros(2, 3, 64, 64))
    with pytest.raises(UserInputError, match=r"got shape \(1, 2, 4, 64, 64\)"):
        model(pixel_values_videos=torch.zeros(1, 2, 4, 64, 64))
    with pytest.raises(UserInputError, match=r"height and width must be multiples of 32 and at least 64 .* 80 x 96"):
        model(pixel_values_videos=torch.zeros(1, 2, 3, 80, 96))


def test_runtime_options_are_checked(demo_export):
    with pytest.raises(UserInputError, match=r"--dtype bfloat16: .* was exported in float32"):
        load_runtime_model(demo_export, "onnx", dtype="bfloat16")
    with pytest.raises(UserInputError, match=r"--runtime tensorrt: must be one of torch, onnx"):
        load_runtime_model(demo_export, "tensorrt")
    with pytest.raises(UserInputError, match=r"--device mps: ONNX Runtime runs on cpu, cuda or cuda:N"):
        load_onnx_model(demo_export, device="mps")
    if not CUDA:
        with pytest.raises(UserInputError, match=r"--device cuda: this onnxruntime has no CUDA execution provider"):
            load_onnx_model(demo_export, device="cuda")


def test_export_options_are_checked(tmp_path, capsys):
    assert main(["export-onnx", "demo", "--output", str(tmp_path / "out"), "--opset", "15"]) == 2
    assert "error: --opset 15: must be between 16 (GridSample" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@torch.library.custom_op("m2f_video_tests::twist", mutates_args=())
def twist(x: torch.Tensor) -> torch.Tensor:
    """An operator without an ONNX conversion."""
    return x.flip(-1)


@twist.register_fake
def _(x):
    return torch.empty_like(x)


class ModelWithAnUnknownOperator(torch.nn.Module):
    """Forward and outputs shaped like the video model's, through `twist`."""

    def forward(self, pixel_values_videos, **unused):
        logits = twist(pixel_values_videos).mean(dim=(2, 3, 4))  # (B, T)
        return Mask2FormerVideoForVideoInstanceSegmentationOutput(
            class_queries_logits=logits[:, :, None],
            masks_queries_logits=logits[:, :, None, None, None],
            transformer_decoder_last_hidden_state=logits[:, :, None],
        )


def test_an_operator_without_onnx_conversion_is_named(tmp_path):
    with pytest.raises(OnnxExportError, match=r"twisty: cannot export to ONNX: the operator m2f_video_tests.twist "):
        export_model(ModelWithAnUnknownOperator(), tmp_path / "model.onnx", name="twisty")
    assert not (tmp_path / "model.onnx").exists()
