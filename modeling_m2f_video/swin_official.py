"""The official Mask2Former Swin behaviour on feature maps smaller than the attention window.

The official `D2SwinTransformer` never changes a block's window or shift: each block pads its (LayerNorm-ed)
token map at the bottom/right to a multiple of the window, odd blocks roll it by `window_size // 2` and use the
-100 region mask computed on the *padded* map, and the padding is cropped afterwards.

transformers' `SwinLayer` can instead shrink its window to `min(height, width)` and drop the shift when the map
is not larger than the window (`SwinLayer.set_shift_and_window_size`, applied unless the caller passes
`always_partition=True`; older releases also applied it once at construction from `config.image_size`). That
gives different numbers on such maps, which real videos hit (Swin-L, window 12, at 360p).

`pad_small_swin_windows` switches a `SwinBackbone` to the official behaviour in place. Only the class of each
`SwinLayer` changes; no parameter or buffer is added, removed or renamed, and the relative-position index (built
for `config.window_size`) stays consistent because the window size is kept.
"""

from transformers.models.swin.modeling_swin import SwinBackbone, SwinLayer


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
