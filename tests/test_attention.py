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
    config = tiny_config()
    model = Mask2FormerVideoForVideoInstanceSegmentation(config).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 2, 3, 64, 64), output_attentions=True)
    assert len(outputs.attentions) == config.decoder_layers - 1
    self_weights, cross_weights = outputs.attentions[0]
    assert self_weights.shape == (1, config.num_attention_heads, config.num_queries, config.num_queries)
    # Cross-attention over the 2 frames of the stride-32 level (2 x 2 x 2 keys), averaged over heads.
    assert cross_weights.shape == (1, config.num_queries, 2 * 2 * 2)
    torch.testing.assert_close(cross_weights.sum(-1), torch.ones(1, config.num_queries))


def test_inference_keeps_only_the_last_prediction():
    model = Mask2FormerVideoForVideoInstanceSegmentation(tiny_config()).eval()
    with torch.no_grad():
        outputs = model.model(torch.randn(1, 2, 3, 64, 64), output_all_predictions=False)
        head_outputs = model(torch.randn(1, 2, 3, 64, 64))
    assert len(outputs.masks_queries_logits) == 1
    assert len(outputs.transformer_decoder_intermediate_states) == 1
    assert head_outputs.auxiliary_logits is None
