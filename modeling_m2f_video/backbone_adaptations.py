"""Backbone adaptations: two make transformers' backbones compute what the official detectron2 ones compute, one
keeps a Swin weight that no output depends on out of training.

None adds, removes or renames a state-dict entry, so image checkpoints load unchanged (and video checkpoints load
into the image model).

- **Frozen batch norm (ResNet).** detectron2's ResNets use `FrozenBN`: fixed statistics and affine parameters,
  also during training. [`freeze_batch_norms`] turns transformers' `nn.BatchNorm2d` layers into
  [`FrozenBatchNorm2d`] in place.
- **Swin windows on small maps.** The official `D2SwinTransformer` never changes a block's window or shift: each
  block pads its (LayerNorm-ed) token map at the bottom/right to a multiple of the window, odd blocks roll it by
  `window_size // 2` and use the -100 region mask computed on the *padded* map, and the padding is cropped
  afterwards. transformers' `SwinLayer` can instead shrink its window to `min(height, width)` and drop the shift
  when the map is not larger than the window (`SwinLayer.set_shift_and_window_size`, applied unless the caller
  passes `always_partition=True`; older releases also applied it once at construction from `config.image_size`).
  That gives different numbers on such maps, which real videos hit (Swin-L, window 12, at 360p).
  [`pad_small_swin_windows`] switches a `SwinBackbone` to the official behaviour in place; the relative-position
  index (built for `config.window_size`) stays consistent because the window size is kept.
- **Swin's unused final norm.** transformers' `SwinBackbone` builds a whole `SwinModel`, whose final `layernorm`
  normalises the last hidden state; the backbone's feature maps are taken before it (and normed by
  `hidden_states_norms`), so no output depends on that norm, and as a trainable parameter it never gets a gradient.
  Distributed data parallel training then fails at its second step (DDP waits for that gradient unless
  `find_unused_parameters=True`, which costs a graph traversal every step). [`freeze_unused_swin_norm`] keeps its
  weight and bias as buffers ([`FrozenLayerNorm`]): same state-dict keys, same numbers, no parameter.
"""

from torch import Tensor, nn
from transformers.models.swin.modeling_swin import SwinBackbone, SwinLayer


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with fixed statistics and affine parameters, like detectron2's `FrozenBN`.

    It subclasses `nn.BatchNorm2d` so that the state-dict keys (including `num_batches_tracked`) stay those of
    transformers' ResNet: image checkpoints load unchanged. It always normalises with the running statistics, also
    in training mode, and its weight and bias are not trained.
    """

    def forward(self, hidden_state: Tensor) -> Tensor:
        return nn.functional.batch_norm(
            hidden_state, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
        )


def freeze_batch_norms(module: nn.Module) -> None:
    """Turns every `nn.BatchNorm2d` below `module` into a [`FrozenBatchNorm2d`] in place (parameters are kept)."""
    for submodule in module.modules():
        if type(submodule) is nn.BatchNorm2d:
            submodule.__class__ = FrozenBatchNorm2d
            submodule.weight.requires_grad_(False)
            submodule.bias.requires_grad_(False)


class FrozenLayerNorm(nn.LayerNorm):
    """LayerNorm whose weight and bias are buffers instead of parameters: saved, loaded, moved and cast like the
    LayerNorm's, but seen by no optimizer and no gradient synchronisation (detectron2's `FrozenBN` keeps its affine
    terms as buffers the same way)."""


def freeze_unused_swin_norm(backbone: SwinBackbone) -> None:
    """Turns the final `swin.layernorm` of `backbone`, which no backbone output depends on, into a
    [`FrozenLayerNorm`] in place (values and state-dict keys are kept)."""
    norm = backbone.swin.layernorm
    if type(norm) is not nn.LayerNorm:
        raise TypeError(f"expected the SwinModel's final nn.LayerNorm, found {type(norm).__name__}")
    norm.__class__ = FrozenLayerNorm
    for name in ("weight", "bias"):
        tensor = getattr(norm, name)
        if isinstance(tensor, nn.Parameter):
            delattr(norm, name)
            norm.register_buffer(name, tensor.detach())


class OfficialSwinLayer(SwinLayer):
    """A `SwinLayer` that keeps its configured window and shift on every map size (padding small maps)."""

    def set_shift_and_window_size(self, input_resolution: tuple[int, int]) -> None:
        """Keep window and shift: the padding in `maybe_pad` and the mask on the padded map do the rest."""


def pad_small_swin_windows(backbone: SwinBackbone) -> None:
    """Make every Swin block of `backbone` pad small feature maps instead of shrinking its window (in place).

    Window and shift are reset to the configured values (`config.window_size`, and `window_size // 2` on odd
    blocks), undoing any shrinking that an earlier forward pass or the constructor may have applied.
    """
    window_size = backbone.config.window_size
    for stage in backbone.swin.encoder.layers:
        for index, block in enumerate(stage.blocks):
            if not isinstance(block, SwinLayer):
                raise TypeError(f"expected SwinLayer blocks, found {type(block).__name__}")
            table_window = block.attention.relative_position_bias.window_size
            if tuple(table_window) != (window_size, window_size):
                raise ValueError(f"block built for window {table_window}, config says {window_size}")
            block.__class__ = OfficialSwinLayer
            block.window_size = window_size
            block.shift_size = 0 if index % 2 == 0 else window_size // 2
