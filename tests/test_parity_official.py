"""End-to-end parity with the official Mask2Former (video) implementation.

The fixtures in `tests/fixtures/official/` hold checkpoints made by the official code (random weights, slim
widths, ResNet-50 and Swin backbones), their merged configs, an input video and the official tensors layer by
layer. From the uint8 frames, through the processor (`do_resize=False`: the frames already are the model-side
input), the converted weights and the video model, to the post-processed top-10, everything must match.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import Mask2FormerForUniversalSegmentation

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.conversion import convert_official_checkpoint
from modeling_m2f_video.processing.video_processing_m2f_video import Mask2FormerVideoProcessor

FIXTURES = Path(__file__).parent / "fixtures/official"
FIXTURE_NAMES = ["r50_slim", "swin_slim"]
TOLERANCE = 1e-4  # max abs diff, float32, for the input and every intermediate tensor
SCORE_TOLERANCE = 1e-5
MASK_MARGIN = 1e-3  # binary masks may differ only where the official logit is this close to 0


def _max_diff(ours: torch.Tensor, official: torch.Tensor) -> float:
    assert tuple(ours.shape) == tuple(official.shape), f"shape {tuple(ours.shape)} != {tuple(official.shape)}"
    return (ours.float() - official.float()).abs().max().item()


@pytest.fixture(scope="module", params=FIXTURE_NAMES)
def run(request, tmp_path_factory):
    """Convert one fixture, then run its video through processor, model and post-processing (once per module)."""
    name = request.param
    fixture = FIXTURES / name
    output = convert_official_checkpoint(
        fixture / "config.yaml", fixture / "model_final.pkl", tmp_path_factory.mktemp(name) / "model", "ytvis2019"
    )
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(output).eval()
    processor = Mask2FormerVideoProcessor.from_pretrained(output)
    video = np.load(fixture / "input.npz")
    inputs = processor(video["frames"], do_resize=False, return_tensors="pt")
    with torch.no_grad():
        outputs = model(inputs["pixel_values_videos"], output_hidden_states=True, output_auxiliary_logits=True)
    results = processor.post_process_video_instance_segmentation(
        outputs,
        target_sizes=[(int(video["height"]), int(video["width"]))],
        top_k=10,
        resized_sizes=inputs["resized_sizes"],
        return_mask_logits=True,
    )
    return {
        "name": name,
        "output_dir": output,
        "model": model,
        "processor": processor,
        "inputs": inputs,
        "outputs": outputs,
        "result": results[0],
        "official": load_file(fixture / "outputs.safetensors"),
    }


def _our_tensors(run) -> dict[str, torch.Tensor]:
    """Our tensors under the fixture's names."""
    outputs = run["outputs"]
    tensors = {"images": run["inputs"]["pixel_values_videos"][0]}
    for level, feature_map in enumerate(outputs.encoder_hidden_states):
        tensors[f"backbone.res{level + 2}"] = feature_map
    tensors["pixel_decoder.mask_features"] = outputs.pixel_decoder_last_hidden_state
    for level, feature_map in enumerate(outputs.pixel_decoder_hidden_states):
        tensors[f"pixel_decoder.multi_scale_features.{level}"] = feature_map
    for index, auxiliary in enumerate(outputs.auxiliary_logits):
        tensors[f"aux.{index}.pred_logits"] = auxiliary["class_queries_logits"]
        tensors[f"aux.{index}.pred_masks"] = auxiliary["masks_queries_logits"]
    tensors["pred_logits"] = outputs.class_queries_logits
    tensors["pred_masks"] = outputs.masks_queries_logits
    return tensors


def test_every_intermediate_tensor_matches(run):
    official = run["official"]
    ours = _our_tensors(run)
    expected_names = {name for name in official if not name.startswith("inference.")}
    assert set(ours) == expected_names
    diffs = {name: _max_diff(ours[name], official[name]) for name in sorted(expected_names)}
    print(f"\n{run['name']} max abs diffs:\n" + "\n".join(f"  {name}: {diff:.3g}" for name, diff in diffs.items()))
    too_far = {name: diff for name, diff in diffs.items() if not diff <= TOLERANCE}
    assert not too_far, f"tensors beyond {TOLERANCE}: {too_far}"


def test_top10_labels_scores_and_masks_match(run):
    official, result = run["official"], run["result"]
    ours = {
        (query, label): index
        for index, (query, label) in enumerate(zip(result["query_indices"].tolist(), result["labels"].tolist()))
    }
    theirs = {
        (query, label): index
        for index, (query, label) in enumerate(
            zip(official["inference.query_indices"].tolist(), official["inference.labels"].tolist())
        )
    }
    assert set(ours) == set(theirs)
    for pair, official_index in theirs.items():
        our_index = ours[pair]
        score_diff = abs(result["scores"][our_index].item() - official["inference.scores"][official_index].item())
        assert score_diff <= SCORE_TOLERANCE, f"{pair}: score differs by {score_diff}"
        official_logits = official["inference.mask_logits"][official_index]
        assert _max_diff(result["mask_logits"][our_index], official_logits) <= TOLERANCE
        differing = result["masks"][our_index] != official["inference.masks"][official_index]
        assert (official_logits[differing].abs() < MASK_MARGIN).all(), f"{pair}: mask pixels flip far from 0"


def test_converted_folder_contents(run):
    files = {path.name for path in run["output_dir"].iterdir()}
    assert {"config.json", "model.safetensors", "README.md"} <= files
    processor = Mask2FormerVideoProcessor.from_pretrained(run["output_dir"])
    expected_shortest = {"r50_slim": 360, "swin_slim": 480}[run["name"]]
    assert processor.size["shortest_edge"] == expected_shortest
    assert processor.size["longest_edge"] == 1333
    assert processor.size_divisibility == 32


@pytest.mark.parametrize("num_frames, height, width", [(2, 70, 100), (1, 57, 83)])
def test_other_input_sizes_match_the_image_model_per_frame(run, num_frames, height, width):
    """Clips whose T, H, W are not multiples of 32: the video model's per-frame backbone and pixel-decoder outputs
    equal those of transformers' image Mask2Former loaded with the same converted weights."""
    model, processor = run["model"], run["processor"]
    image_config = copy.deepcopy(model.config)
    image_config._attn_implementation = "eager"  # the image model has no SDPA path
    image_model = Mask2FormerForUniversalSegmentation(image_config).eval()
    image_model.load_state_dict(model.state_dict())
    frames = torch.randint(0, 256, (num_frames, height, width, 3), dtype=torch.uint8).numpy()
    pixel_values = processor(frames, do_resize=False, return_tensors="pt")["pixel_values_videos"]
    padded = (-(-height // 32) * 32, -(-width // 32) * 32)
    assert pixel_values.shape == (1, num_frames, 3, *padded)
    with torch.no_grad():
        video_outputs = model(pixel_values, output_hidden_states=True)
        image_outputs = image_model.model.pixel_level_module(pixel_values[0], output_hidden_states=True)
    pairs = [
        *zip(video_outputs.encoder_hidden_states, image_outputs.encoder_hidden_states),
        (video_outputs.pixel_decoder_last_hidden_state, image_outputs.decoder_last_hidden_state),
        *zip(video_outputs.pixel_decoder_hidden_states, image_outputs.decoder_hidden_states),
    ]
    for ours, reference in pairs:
        assert _max_diff(ours, reference) <= TOLERANCE
    assert video_outputs.masks_queries_logits.shape == (1, 12, num_frames, padded[0] // 4, padded[1] // 4)
    assert torch.isfinite(video_outputs.masks_queries_logits).all()
