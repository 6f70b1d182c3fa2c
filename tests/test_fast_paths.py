"""The CPU inference fast paths give the reference's numbers, and run where they should.

Fast paths: the gather-based deformable sampling and the fused linear layers of the pixel decoder
(`deformable_attention.py`), the attention masks of intermediate decoder layers made from the mask features
resized per level, and the per-device default of `frame_chunk_size`. The reference is transformers' code
(`reference_cpu_paths()`), all frames at once and every mask volume computed (`output_auxiliary_logits=True`).
"""

import pytest
import torch
from conftest import tiny_config
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderLayer,
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
    multi_scale_deformable_attention,
)

import modeling_m2f_video.deformable_attention as deformable_attention
from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from modeling_m2f_video.deformable_attention import (
    Mask2FormerVideoMultiscaleDeformableAttention,
    Mask2FormerVideoPixelDecoderEncoderLayer,
    multi_scale_deformable_sampling,
    reference_cpu_paths,
)
from modeling_m2f_video.modeling_m2f_video import DEFAULT_FRAME_CHUNK_SIZE, default_frame_chunk_size

SHAPES = [(3, 5), (6, 10), (12, 20)]  # (h, w) per level, odd sizes included


def _sampling_inputs(batch_size: int = 2, num_heads: int = 4, head_dim: int = 8, num_points: int = 4):
    """Values, offsets (pixels) reaching well beyond every border, reference points, attention weights."""
    num_levels, positions = len(SHAPES), sum(h * w for h, w in SHAPES)
    value = torch.randn(batch_size, positions, num_heads, head_dim)
    offsets = torch.randn(batch_size, positions, num_heads, num_levels, num_points, 2) * 6
    reference = torch.rand(batch_size, positions, num_levels, 2)
    weights = torch.rand(batch_size, positions, num_heads, num_levels * num_points).softmax(-1)
    return value, offsets, reference, weights.view(batch_size, positions, num_heads, num_levels, num_points)


def test_sampling_equals_transformers_grid_sample():
    value, offsets, reference, weights = _sampling_inputs()
    normalizer = torch.tensor([[w, h] for h, w in SHAPES], dtype=torch.float32)
    locations = reference[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
    expected = multi_scale_deformable_attention(value, SHAPES, locations, weights)
    # The sampling reads the offsets x and y apart: (B, Lq, 2, heads, L, P).
    offsets_xy_apart = offsets.permute(0, 1, 5, 2, 3, 4).contiguous()
    actual = multi_scale_deformable_sampling(value, SHAPES, offsets_xy_apart, reference, weights)
    assert (locations < 0).any() and (locations > 1).any()  # zero padding is exercised on both sides
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)


def _attention_pair():
    torch.manual_seed(0)
    reference = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(32, 4, len(SHAPES), 4)
    for parameter in reference.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    fast = Mask2FormerVideoMultiscaleDeformableAttention(32, 4, len(SHAPES), 4)
    fast.load_state_dict(reference.state_dict())
    positions = sum(h * w for h, w in SHAPES)
    hidden = torch.randn(2, positions, 32)
    inputs = {
        "attention_mask": torch.zeros(2, positions, dtype=torch.bool),
        "encoder_hidden_states": hidden,
        "position_embeddings": torch.randn(2, positions, 32),
        "reference_points": torch.rand(2, positions, 1, 2).expand(-1, -1, len(SHAPES), -1),
        "spatial_shapes_list": SHAPES,
    }
    return reference, fast, hidden, inputs


def test_deformable_attention_module_equals_upstream(monkeypatch):
    reference, fast, hidden, inputs = _attention_pair()
    with torch.no_grad():
        expected_output, expected_weights = reference(hidden, **inputs)

        def no_grid_sample(*args, **kwargs):
            raise AssertionError("the fast path must not call grid_sample")

        monkeypatch.setattr(torch.nn.functional, "grid_sample", no_grid_sample)
        output, weights = fast(hidden, **inputs)
    torch.testing.assert_close(output, expected_output, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights, expected_weights, rtol=0, atol=1e-6)


def test_deformable_attention_keeps_upstream_path_for_autograd_and_reference(monkeypatch):
    _, fast, hidden, inputs = _attention_pair()
    calls = []
    grid_sample = torch.nn.functional.grid_sample
    monkeypatch.setattr(
        torch.nn.functional, "grid_sample", lambda *args, **kwargs: calls.append(1) or grid_sample(*args, **kwargs)
    )
    fast(hidden, **inputs)[0].sum().backward()  # gradients on: transformers' path
    assert calls and fast.value_proj.weight.grad is not None
    calls.clear()
    with torch.no_grad(), reference_cpu_paths():
        fast(hidden, **inputs)
    assert calls


def test_sampling_falls_back_when_rows_are_not_exact_in_float32(monkeypatch):
    reference, fast, hidden, inputs = _attention_pair()
    monkeypatch.setattr(deformable_attention, "_EXACT_FLOAT32_INTEGERS", 16)
    value, offsets, reference_points, weights = _sampling_inputs()
    assert (
        multi_scale_deformable_sampling(value, SHAPES, offsets.permute(0, 1, 5, 2, 3, 4), reference_points, weights)
        is None
    )
    with torch.no_grad():
        torch.testing.assert_close(fast(hidden, **inputs)[0], reference(hidden, **inputs)[0], rtol=0, atol=1e-6)


def test_pixel_decoder_layer_equals_upstream():
    config = tiny_config("resnet", encoder_feedforward_dim=64)
    torch.manual_seed(0)
    upstream = Mask2FormerPixelDecoderEncoderLayer(config).eval()
    fast = Mask2FormerVideoPixelDecoderEncoderLayer(config).eval()
    for parameter in upstream.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    fast.load_state_dict(upstream.state_dict())
    positions = sum(h * w for h, w in SHAPES)
    hidden = torch.randn(2, positions, config.feature_size)
    arguments = (hidden, torch.zeros(2, positions, dtype=torch.bool), torch.randn_like(hidden))
    keywords = {"reference_points": torch.rand(2, positions, 3, 2), "spatial_shapes_list": SHAPES}
    with torch.no_grad():
        torch.testing.assert_close(
            fast(*arguments, **keywords)[0], upstream(*arguments, **keywords)[0], rtol=0, atol=1e-5
        )


def test_fast_layers_keep_the_image_state_dict_keys():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config("resnet"))
    layers = model.model.pixel_level_module.decoder.encoder.layers
    assert all(isinstance(layer, Mask2FormerVideoPixelDecoderEncoderLayer) for layer in layers)
    assert "model.pixel_level_module.decoder.encoder.layers.0.self_attn.sampling_offsets.weight" in model.state_dict()


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_default_path_equals_reference_path(backbone):
    """The whole model: every fast path on (default call) vs transformers' code, all frames at once, every mask
    volume computed."""
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config(backbone)).eval()
    video = torch.randn(1, 3, 3, 64, 96)
    with torch.no_grad():
        with reference_cpu_paths():
            expected = model(video, frame_chunk_size=3, output_auxiliary_logits=True)
        actual = model(video)
    torch.testing.assert_close(actual.class_queries_logits, expected.class_queries_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(actual.masks_queries_logits, expected.masks_queries_logits, rtol=0, atol=1e-4)


def test_low_resolution_attention_masks_equal_resized_volumes():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config("resnet")).eval()
    predictor = model.model.transformer_module.decoder.mask_predictor
    queries, mask_features = torch.randn(6, 2, 32), torch.randn(2, 32, 3, 16, 24)
    level_features = torch.nn.functional.interpolate(
        mask_features.flatten(1, 2), size=(4, 6), mode="bilinear", align_corners=False
    ).view(2, 32, -1)
    with torch.no_grad():
        volume, expected = predictor(queries, mask_features, (4, 6))
        actual = predictor.attention_mask_only(queries, level_features)
        logits = torch.nn.functional.interpolate(volume.flatten(0, 1), size=(4, 6), mode="bilinear").view(2, 1, 6, -1)
    assert actual.shape == expected.shape == (2, 1, 6, 3 * 4 * 6)
    # Equal except where float rounding decides the sign of a logit within 1e-5 of zero.
    assert torch.equal(actual | (logits.abs() < 1e-5), expected | (logits.abs() < 1e-5))


def _pixel_level_calls(model, video, **kwargs) -> int:
    calls = []
    handle = model.model.pixel_level_module.encoder.register_forward_hook(lambda *args: calls.append(1))
    try:
        with torch.no_grad():
            model(video, **kwargs)
    finally:
        handle.remove()
    return len(calls)


def test_default_frame_chunk_size_is_chosen_per_device(monkeypatch):
    assert DEFAULT_FRAME_CHUNK_SIZE == {"cpu": 1}
    assert default_frame_chunk_size("cpu") == 1
    assert default_frame_chunk_size("cuda") is None  # all frames at once
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config("resnet")).eval()
    video = torch.randn(1, 4, 3, 64, 64)
    assert model.config.frame_chunk_size is None
    assert _pixel_level_calls(model, video) == 4  # CPU: one frame at a time
    assert _pixel_level_calls(model, video, frame_chunk_size=3) == 2  # the call's value wins
    model.config.frame_chunk_size = 4
    assert _pixel_level_calls(model, video) == 1  # then the config's
    model.config.frame_chunk_size = None
    # With autograd on (training), all frames at once.
    calls = []
    handle = model.model.pixel_level_module.encoder.register_forward_hook(lambda *args: calls.append(1))
    model(video)
    handle.remove()
    assert len(calls) == 1
    # Traced graphs (torch.compile, the ONNX export) take all frames at once.
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert _pixel_level_calls(model, video) == 1
