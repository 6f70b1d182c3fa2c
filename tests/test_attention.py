"""The fast attention path (scaled_dot_product_attention, head-broadcast masks) against the reference path.

The reference is the image decoder layers' own attention modules (`attn_implementation="eager"`): the outputs of the
two must agree within 1e-4, in post-norm and pre-norm layers, in inference and training.
"""

import pytest
import torch
from conftest import tiny_config

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation


def outputs_of(model, video, implementation, **kwargs):
    model.config._attn_implementation = implementation
    return model(video, output_auxiliary_logits=True, **kwargs)


@pytest.mark.parametrize("pre_norm", [False, True])
def test_sdpa_matches_eager_attention(pre_norm):
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config(pre_norm=pre_norm)).eval()
    video = torch.randn(2, 3, 3, 64, 96)
    with torch.no_grad():
        fast = outputs_of(model, video, "sdpa")
        reference = outputs_of(model, video, "eager")
    torch.testing.assert_close(fast.class_queries_logits, reference.class_queries_logits, rtol=0, atol=1e-4)
    torch.testing.assert_close(fast.masks_queries_logits, reference.masks_queries_logits, rtol=0, atol=1e-4)
    for fast_aux, reference_aux in zip(fast.auxiliary_logits, reference.auxiliary_logits):
        torch.testing.assert_close(
            fast_aux["masks_queries_logits"], reference_aux["masks_queries_logits"], atol=1e-4, rtol=0
        )


def test_sdpa_matches_eager_gradients():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).train()
    video = torch.randn(1, 2, 3, 64, 64)
    labels = {"mask_labels": [torch.rand(2, 2, 64, 64).round()], "class_labels": [torch.tensor([1, 2])]}

    def gradients(implementation):
        model.zero_grad()
        torch.manual_seed(0)
        outputs_of(model, video, implementation, **labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    fast, reference = gradients("sdpa"), gradients("eager")
    for name in reference:
        torch.testing.assert_close(fast[name], reference[name], rtol=1e-3, atol=1e-5, msg=name)


def test_attention_weights_are_returned_on_request():
    """As the image model: one self-attention tensor per decoder layer in `attentions`; the masked cross-attention
    weights in `cross_attentions` (transformers' name for them), per head too."""
    config = tiny_config()
    model = Mask2FormerVideoForVideoInstanceSegmentation(config).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 2, 3, 64, 64), output_attentions=True)
        base_outputs = model.model(torch.randn(1, 2, 3, 64, 64), output_attentions=True)
    heads, queries = config.num_attention_heads, config.num_queries
    for result in (outputs, base_outputs):
        assert len(result.attentions) == len(result.cross_attentions) == config.decoder_layers - 1
        assert all(isinstance(weights, torch.Tensor) for weights in result.attentions + result.cross_attentions)
    assert outputs.attentions[-1].shape == (1, heads, queries, queries)
    torch.testing.assert_close(outputs.attentions[0].sum(-1), torch.ones(1, heads, queries))
    # Layer l attends to level l % 3 (strides 32, 16, 8) of both frames: 2 x (2x2, 4x4, 8x8) keys.
    for layer, cross_weights in enumerate(outputs.cross_attentions):
        side = 2 ** (1 + layer % 3)
        assert cross_weights.shape == (1, heads, queries, 2 * side * side)
        torch.testing.assert_close(cross_weights.sum(-1), torch.ones(1, heads, queries))
    assert model(torch.randn(1, 2, 3, 64, 64)).cross_attentions is None


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_attention_implementation_can_be_switched_on_a_built_model(backbone):
    """`set_attn_implementation` switches a built model (and its backbone) between the two paths, as
    `from_pretrained(..., attn_implementation=...)` does; both give the same predictions.

    Back to SDPA, the backbone keeps its own default: transformers applies a plain string to every sub-model, and
    its ResNet (which has no attention) accepts only "eager", so a dict names the backbone's."""
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config(backbone)).eval()
    video = torch.randn(1, 2, 3, 64, 64)
    assert model.config._attn_implementation == "sdpa"
    backbone_default = model.config.backbone_config._attn_implementation
    assert backbone_default == {"resnet": "eager", "swin": "sdpa"}[backbone]
    # The image layer's nn.MultiheadAttention runs only on the eager path (SDPA uses its weights directly).
    eager_calls = []
    model.model.transformer_module.decoder.layers[0].cross_attn.register_forward_hook(lambda *_: eager_calls.append(1))
    with torch.no_grad():
        fast = model(video).masks_queries_logits
        model.set_attn_implementation("eager")
        assert model.config._attn_implementation == "eager"
        assert model.config.backbone_config._attn_implementation == "eager"
        reference = model(video).masks_queries_logits
        assert len(eager_calls) == 1
        model.set_attn_implementation({"": "sdpa", "backbone_config": backbone_default})
        assert model.config._attn_implementation == "sdpa"
        model(video)
    assert len(eager_calls) == 1
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-4)


def test_inference_keeps_only_the_last_prediction():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).eval()
    with torch.no_grad():
        outputs = model.model(torch.randn(1, 2, 3, 64, 64), output_all_predictions=False)
        head_outputs = model(torch.randn(1, 2, 3, 64, 64))
    assert len(outputs.masks_queries_logits) == 1
    assert len(outputs.transformer_decoder_intermediate_states) == 1
    assert head_outputs.auxiliary_logits is None
