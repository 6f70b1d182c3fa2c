"""The video model: shapes, batching, joint attention over frames, image-checkpoint compatibility, save/load."""

import math

import pytest
import torch
from conftest import tiny_config
from transformers import AutoConfig, AutoModel, Mask2FormerConfig, Mask2FormerForUniversalSegmentation

from modeling_m2f_video import (
    AutoModelForVideoInstanceSegmentation,
    Mask2FormerVideoConfig,
    Mask2FormerVideoForVideoInstanceSegmentation,
    Mask2FormerVideoModel,
)
from modeling_m2f_video import modeling_m2f_video as modeling
from modeling_m2f_video.backbone_adaptations import FrozenBatchNorm2d, FrozenLayerNorm
from modeling_m2f_video.deformable_attention import reference_cpu_paths
from modeling_m2f_video.modeling_m2f_video import temporal_sine_embedding


def make_model(backbone: str = "resnet", **overrides) -> Mask2FormerVideoForVideoInstanceSegmentation:
    return Mask2FormerVideoForVideoInstanceSegmentation(tiny_config(backbone, **overrides)).eval()


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
@pytest.mark.parametrize("num_frames", [1, 2, 5])
def test_output_shapes(backbone, num_frames):
    model = make_model(backbone)
    video = torch.randn(1, num_frames, 3, 64, 96)
    with torch.no_grad():
        outputs = model(video, output_auxiliary_logits=True, output_hidden_states=True)
    config = model.config
    assert outputs.class_queries_logits.shape == (1, config.num_queries, config.num_labels + 1)
    assert outputs.masks_queries_logits.shape == (1, config.num_queries, num_frames, 16, 24)
    # One auxiliary prediction before the first decoder layer and one after each layer but the last.
    assert len(outputs.auxiliary_logits) == config.decoder_layers - 1
    for aux in outputs.auxiliary_logits:
        assert aux["masks_queries_logits"].shape == outputs.masks_queries_logits.shape
    assert outputs.pixel_decoder_last_hidden_state.shape == (num_frames, config.mask_feature_size, 16, 24)
    assert len(outputs.encoder_hidden_states) == 4
    assert torch.isfinite(outputs.masks_queries_logits).all()


def test_batch_equals_each_video_alone():
    model = make_model()
    videos = torch.randn(2, 3, 3, 64, 64)
    with torch.no_grad():
        batched = model(videos)
        alone = [model(video[None]) for video in videos]
    for index, single in enumerate(alone):
        torch.testing.assert_close(batched.class_queries_logits[index], single.class_queries_logits[0])
        torch.testing.assert_close(batched.masks_queries_logits[index], single.masks_queries_logits[0])


def test_masked_attention_spans_all_frames():
    """The queries attend to every frame: changing only the last frame changes the first frame's masks."""
    model = make_model()
    video = torch.randn(1, 3, 3, 64, 64)
    changed = video.clone()
    changed[:, -1] = torch.randn_like(changed[:, -1])
    with torch.no_grad():
        first = model(video).masks_queries_logits[:, :, 0]
        second = model(changed).masks_queries_logits[:, :, 0]
    assert (first - second).abs().max() > 1e-2 * first.abs().max()


def test_temporal_encoding_makes_frame_order_matter(monkeypatch):
    """Attention over a set of keys ignores their order; only the temporal encoding tells the frames apart.

    Reversing the frames changes the class logits, and stops changing them once the temporal encoding is removed.
    """
    model = make_model()
    video = torch.randn(1, 3, 3, 64, 64)
    reversed_video = video.flip(1)

    def class_logits(clip):
        with torch.no_grad():
            return model(clip).class_queries_logits

    assert (class_logits(video) - class_logits(reversed_video)).abs().max() > 1e-4

    monkeypatch.setattr(
        modeling,
        "temporal_sine_embedding",
        lambda num_frames, num_features, device, dtype: torch.zeros(num_frames, num_features, dtype=dtype),
    )
    torch.testing.assert_close(class_logits(video), class_logits(reversed_video), rtol=0, atol=1e-5)


def test_temporal_sine_embedding_matches_formula():
    num_frames, num_features = 3, 8
    embedding = temporal_sine_embedding(num_frames, num_features, torch.device("cpu"), torch.float64)
    for t in range(num_frames):
        position = (t + 1) / (num_frames + 1e-6) * 2 * math.pi
        for i in range(num_features):
            angle = position / 10000 ** (2 * (i // 2) / num_features)
            expected = math.sin(angle) if i % 2 == 0 else math.cos(angle)
            assert embedding[t, i].item() == pytest.approx(expected, abs=1e-12)


def test_frame_chunking_gives_the_same_outputs():
    """Chunks only change the batch size of the per-frame convolutions: equal up to float rounding."""
    model = make_model()
    video = torch.randn(1, 5, 3, 64, 64)
    with torch.no_grad():
        whole = model(video, output_hidden_states=True)
        model.config.frame_chunk_size = 2
        chunked = model(video, output_hidden_states=True)
    torch.testing.assert_close(chunked.masks_queries_logits, whole.masks_queries_logits, rtol=0, atol=1e-6)
    torch.testing.assert_close(chunked.class_queries_logits, whole.class_queries_logits, rtol=0, atol=1e-6)
    for chunked_level, whole_level in zip(chunked.encoder_hidden_states, whole.encoder_hidden_states):
        torch.testing.assert_close(chunked_level, whole_level, rtol=0, atol=1e-6)
    for chunked_level, whole_level in zip(chunked.pixel_decoder_hidden_states, whole.pixel_decoder_hidden_states):
        torch.testing.assert_close(chunked_level, whole_level, rtol=1e-5, atol=1e-5)


def test_frame_chunking_gives_the_same_gradients():
    """Chunks join along the frames before the transformer decoder; the gradients must equal the unchunked run's."""
    model = make_model(dropout=0.0).train()
    video = torch.randn(1, 5, 3, 64, 64)
    labels = {"mask_labels": [torch.rand(2, 5, 64, 64).round()], "class_labels": [torch.tensor([0, 2])]}

    def gradients(frame_chunk_size):
        model.config.frame_chunk_size = frame_chunk_size
        model.zero_grad()
        torch.manual_seed(1)
        model(video, **labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    whole, chunked = gradients(None), gradients(2)
    assert whole.keys() == chunked.keys()
    assert any(name.startswith("model.pixel_level_module.encoder") for name in whole)
    for name in whole:
        torch.testing.assert_close(chunked[name], whole[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_image_checkpoint_loads_without_missing_or_unexpected_keys(tmp_path, backbone):
    video_config = tiny_config(backbone)
    image_config = Mask2FormerConfig(**{k: v for k, v in video_config.to_dict().items() if k != "model_type"})
    image_model = Mask2FormerForUniversalSegmentation(image_config).eval()
    image_model.save_pretrained(tmp_path)

    video_model, info = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert info["missing_keys"] == set() or not info["missing_keys"]
    assert not info["unexpected_keys"]
    assert not info["mismatched_keys"]
    assert set(video_model.state_dict()) == set(image_model.state_dict())
    for name, tensor in image_model.state_dict().items():
        torch.testing.assert_close(video_model.state_dict()[name], tensor, rtol=0, atol=0)

    # The per-frame pixel-level outputs equal the image model's on each frame: exactly on transformers' code path,
    # within float32 rounding on the CPU fast paths (the default; another summation order). The reference call
    # takes both frames in one batch, as the image model does (batch size changes the convolutions' rounding).
    video = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        with reference_cpu_paths():
            video_outputs = video_model.eval()(video, frame_chunk_size=2, output_hidden_states=True)
        fast_outputs = video_model(video, output_hidden_states=True)
        image_outputs = image_model(video[0], output_hidden_states=True)
    torch.testing.assert_close(
        fast_outputs.pixel_decoder_last_hidden_state,
        image_outputs.pixel_decoder_last_hidden_state,
        rtol=1e-5,
        atol=1e-5,
    )
    torch.testing.assert_close(
        video_outputs.pixel_decoder_last_hidden_state, image_outputs.pixel_decoder_last_hidden_state, rtol=0, atol=0
    )
    for video_level, image_level in zip(
        video_outputs.pixel_decoder_hidden_states, image_outputs.pixel_decoder_hidden_states
    ):
        torch.testing.assert_close(video_level, image_level, rtol=0, atol=0)


def test_save_load_round_trip_and_auto_classes(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert AutoConfig.from_pretrained(tmp_path).model_type == "mask2former_video"

    reloaded = AutoModelForVideoInstanceSegmentation.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, Mask2FormerVideoForVideoInstanceSegmentation)
    video = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(video).masks_queries_logits, model(video).masks_queries_logits)

    base = AutoModel.from_pretrained(tmp_path)
    assert isinstance(base, Mask2FormerVideoModel)


def test_resnet_backbone_is_detectron2_style():
    """Stride on the 3x3 conv of the first block of stages 2-4, and frozen batch norms."""
    model = make_model()
    stages = model.model.pixel_level_module.encoder.encoder.stages
    for stage in stages[1:]:
        first_block = stage.layers[0]
        assert first_block.layer[0].convolution.stride == (1, 1)
        assert first_block.layer[1].convolution.stride == (2, 2)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(isinstance(m, FrozenBatchNorm2d) for m in norms)
    assert all(not m.weight.requires_grad for m in norms)


def test_frozen_batch_norm_ignores_training_mode():
    model = make_model()
    video = torch.randn(1, 2, 3, 64, 64)
    with torch.no_grad():
        eval_features = model.model.pixel_level_module.encoder(video[0]).feature_maps
        model.train()
        train_features = model.model.pixel_level_module.encoder(video[0]).feature_maps
    for eval_map, train_map in zip(eval_features, train_features):
        torch.testing.assert_close(eval_map, train_map)


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_every_trainable_parameter_gets_a_gradient(backbone):
    """Distributed data parallel training (default `find_unused_parameters=False`) fails at its second step when a
    trainable parameter got no gradient in the first, so the model has none that no output depends on."""
    model = make_model(backbone).train()
    video = torch.randn(1, 2, 3, 64, 64)
    labels = {"mask_labels": [torch.rand(2, 2, 64, 64).round()], "class_labels": [torch.tensor([0, 2])]}
    model(video, **labels).loss.backward()
    assert [name for name, param in model.named_parameters() if param.requires_grad and param.grad is None] == []


def test_unused_swin_norm_is_kept_as_buffers():
    """The final norm of transformers' SwinModel, which the backbone's feature maps do not go through, is no
    parameter, but keeps its state-dict entries (image checkpoints and strict loading in both directions)."""
    model = make_model("swin")
    norm = model.model.pixel_level_module.encoder.swin.layernorm
    assert isinstance(norm, FrozenLayerNorm) and list(norm.parameters()) == []
    prefix = "model.pixel_level_module.encoder.swin.layernorm."
    assert {prefix + "weight", prefix + "bias"} <= set(model.state_dict())
    assert not any(name.startswith(prefix) for name, _ in model.named_parameters())


def test_gradient_checkpointing_gives_the_same_gradients():
    model = make_model(dropout=0.0).train()
    video = torch.randn(1, 2, 3, 64, 64)
    labels = {"mask_labels": [torch.rand(2, 2, 64, 64).round()], "class_labels": [torch.tensor([0, 2])]}

    def gradients():
        model.zero_grad()
        torch.manual_seed(1)
        model(video, **labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in model.model.transformer_module.decoder.layers)
    checkpointed = gradients()
    assert plain.keys() == checkpointed.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


@pytest.mark.parametrize(
    ("video", "message"),
    [
        (torch.randn(2, 3, 64, 64), "shape"),
        (torch.randn(1, 2, 4, 64, 64), "3 \\(RGB\\) channels"),
        (torch.randn(1, 0, 3, 64, 64), "0 frames"),
    ],
)
def test_bad_video_input(video, message):
    with pytest.raises(ValueError, match=message):
        make_model()(video)


def test_bad_pixel_mask():
    with pytest.raises(ValueError, match="pixel_mask"):
        make_model()(torch.randn(1, 2, 3, 64, 64), pixel_mask=torch.ones(1, 32, 32))


@pytest.mark.parametrize(
    ("mask_labels", "class_labels", "message"),
    [
        ([torch.zeros(1, 3, 64, 64)], [torch.tensor([0])], "mask_labels\\[0\\]"),
        ([torch.zeros(2, 2, 64, 64)], [torch.tensor([0])], "class_labels\\[0\\]"),
        ([torch.zeros(1, 2, 64, 64)], [torch.tensor([7])], "must lie in"),
        ([torch.zeros(1, 2, 64, 64)] * 2, [torch.tensor([0])] * 2, "one mask_labels"),
    ],
)
def test_bad_labels(mask_labels, class_labels, message):
    with pytest.raises(ValueError, match=message):
        make_model().train()(torch.randn(1, 2, 3, 64, 64), mask_labels=mask_labels, class_labels=class_labels)


def test_presets():
    presets = Mask2FormerVideoConfig.list_presets()
    assert len(presets) == 12
    swin_large = Mask2FormerVideoConfig.from_preset("swin-large-ytvis2019")
    assert swin_large.num_queries == 200
    assert swin_large.backbone_config.embed_dim == 192 and swin_large.backbone_config.window_size == 12
    assert swin_large.test_shortest_edge == 480
    r101 = Mask2FormerVideoConfig.from_preset("r101-ytvis2021")
    assert r101.num_queries == 100 and r101.backbone_config.depths == [3, 4, 23, 3]
    assert r101.test_shortest_edge == 360
    assert r101.num_labels == 40 and r101.id2label[39] == "zebra"
    assert Mask2FormerVideoConfig.from_preset("r50-ytvis2019").id2label[0] == "person"
    with pytest.raises(ValueError, match="Unknown preset"):
        Mask2FormerVideoConfig.from_preset("r18-ytvis2019")
