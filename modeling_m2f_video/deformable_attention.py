"""Multi-scale deformable attention of the pixel decoder with a faster bilinear sampling for CPU inference.

transformers' `Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention` (like the official code's PyTorch
fallback, `ms_deform_attn_core_pytorch`) samples the values with `grid_sample`: per feature level it copies the
values into a `(batch·heads, head_dim, h, w)` map, samples it at every (query, point) location into
`(batch·heads, head_dim, queries, points)`, then stacks the samples of all levels, multiplies them by the attention
weights and sums over levels and points, and transposes the result back to `(batch, queries, channels)`. On the CPU
these copies, the stack (4 times the output size per point) and the product are most of the pixel decoder's time.

[`Mask2FormerVideoMultiscaleDeformableAttention`] keeps the parameters (names, shapes, initialisation) and the
maths of the upstream module and changes only how the sampling is computed at inference on the CPU: every
sample is a weighted sum of the 4 neighbouring value vectors, so the whole multi-scale sampling and attention-
weighted sum is one sparse weighted gather. `torch.nn.functional.embedding_bag(mode="sum")` does exactly that
(fused gather, scale and sum, without any intermediate of the sample count) on the values in their natural layout
`(batch·positions·heads, head_dim)`, and its output `(batch·queries·heads, head_dim)` is already the layout the
output projection reads. The out-of-bounds corners of `grid_sample(padding_mode="zeros")` are handled by a
one-pixel zero border around each level's value map (so no validity masks are needed): locations further out are
clamped to the border, where all their weight lands on zeros.

[`Mask2FormerVideoPixelDecoderEncoderLayer`] (upstream's encoder layer, same parameters) uses that attention and,
in the same CPU inference, runs its linear layers through oneDNN's fused product ([`fast_linear`]: bias and ReLU
inside the product, where upstream's `addmm` first copies the bias into every output row); the sampling-offset and
attention-weight projections run as one product.

The result equals upstream's within float32 rounding (tested to 1e-5 on the module and 1e-4 on the model). The
upstream path still runs for training (autograd through `grid_sample`), on other devices, under `torch.compile`
/ `torch.export` (the ONNX export) and where the row indices would not be exact in float32.
"""

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderLayer,
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
)

# The row arithmetic runs in float32 (vectorised, and exact for integers below 2**24); larger value tables (about
# 2 M positions x heads, far beyond any video frame) take the upstream path.
_EXACT_FLOAT32_INTEGERS = 2**24


_fast_paths_enabled = True


@contextlib.contextmanager
def reference_cpu_paths() -> Iterator[None]:
    """Within this block the CPU fast paths are off and every layer runs transformers' code: the reference that
    the tests and benchmarks compare the fast paths with."""
    global _fast_paths_enabled
    previous, _fast_paths_enabled = _fast_paths_enabled, False
    try:
        yield
    finally:
        _fast_paths_enabled = previous


def use_fast_sampling(value: Tensor) -> bool:
    """Whether the CPU fast paths apply: float32 CPU inference without autograd, outside compile/export tracing
    and outside [`reference_cpu_paths`]."""
    return (
        _fast_paths_enabled
        and value.device.type == "cpu"
        and value.dtype == torch.float32
        and not torch.is_grad_enabled()
        and not torch.compiler.is_compiling()
    )


def fast_linear(hidden_states: Tensor, weight: Tensor, bias: Tensor | None, relu: bool = False) -> Tensor:
    """`linear` (then `relu` when asked) through oneDNN's fused matrix product on the CPU, `nn.functional.linear`
    elsewhere.

    transformers' layers call `nn.functional.linear`, which on the CPU first copies the bias into every output row
    and then accumulates the product (and `relu` is one more pass); oneDNN adds the bias and applies the activation
    inside the product. Same numbers up to float32 rounding (summation order), 1.5-2.5x faster on the pixel
    decoder's (5040 x 256) x (256 x 1024) products here. Call only where [`use_fast_sampling`] holds.
    """
    if torch.backends.mkldnn.is_available():
        return torch.ops.mkldnn._linear_pointwise(hidden_states, weight, bias, "relu" if relu else "none", [], "")
    output = nn.functional.linear(hidden_states, weight, bias)
    return output.relu_() if relu else output


def multi_scale_deformable_sampling(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_offsets: Tensor,
    reference_points: Tensor,
    attention_weights: Tensor,
) -> Tensor | None:
    """Bilinear multi-scale deformable sampling and attention-weighted sum as one `embedding_bag`.

    Computes what transformers' `multi_scale_deformable_attention` computes for the sampling locations
    `reference_points + sampling_offsets / (w, h)` (normalised coordinates, `grid_sample` with `align_corners=False`
    and zero padding), without forming the locations in normalised coordinates.

    Every elementwise step runs on `(batch·queries, heads·levels·points)` rows with per-column constants, so that the
    innermost dimension is long and contiguous (TensorIterator vectorises it); hence the offsets come x and y
    apart (`(batch, queries, 2, heads, levels, points)`) rather than interleaved as upstream lays them out.

    Args:
        value: `(batch, positions, heads, head_dim)`, positions of all levels concatenated (level by level, row-major).
        spatial_shapes: `(h, w)` of every level.
        sampling_offsets: `(batch, queries, 2, heads, levels, points)`, x then y, in pixels of each level; the last
            three dimensions must be contiguous.
        reference_points: `(batch, queries, levels, 2)`, (x, y) normalised to [0, 1].
        attention_weights: `(batch, queries, heads, levels, points)`, softmax-normalised over levels and points.

    Returns:
        `(batch, queries, heads * head_dim)`, or None where the value table is too large for exact float32 rows.
    """
    batch_size, _, num_heads, head_dim = value.shape
    _, num_queries, _, _, num_levels, num_points = sampling_offsets.shape
    dtype, device = value.dtype, value.device
    padded_sizes = [(height + 2) * (width + 2) for height, width in spatial_shapes]
    padded_positions = sum(padded_sizes)
    if batch_size * padded_positions * num_heads >= _EXACT_FLOAT32_INTEGERS:
        return None

    # Values with a one-pixel zero border around every level: (batch, padded positions, heads, head_dim).
    padded = value.new_zeros(batch_size, padded_positions, num_heads, head_dim)
    start, padded_start = 0, 0
    for (height, width), padded_size in zip(spatial_shapes, padded_sizes):
        level = padded[:, padded_start : padded_start + padded_size].view(
            batch_size, height + 2, width + 2, num_heads, head_dim
        )
        level[:, 1:-1, 1:-1] = value[:, start : start + height * width].view(
            batch_size, height, width, num_heads, head_dim
        )
        start, padded_start = start + height * width, padded_start + padded_size

    # Per-column constants over (heads, levels, points), columns = heads * levels * points.
    columns = num_heads * num_levels * num_points

    def per_column(per_level: list[float]) -> Tensor:
        level_values = torch.tensor(per_level, dtype=dtype, device=device)
        return level_values[None, :, None].expand(num_heads, num_levels, num_points).reshape(columns)

    width = per_column([w for _, w in spatial_shapes])
    height = per_column([h for h, _ in spatial_shapes])
    padded_width = width + 2
    padded_starts = [sum(padded_sizes[:level]) for level in range(num_levels)]
    head_index = torch.arange(num_heads, dtype=dtype, device=device)[:, None].expand(-1, num_levels * num_points)
    # Row of the top-left corner (x, y) in the padded table viewed as (batch * padded positions * heads, head_dim):
    # ((start + (y + 1) * padded_width + x + 1) * heads + head) = x * heads + y * padded_width * heads + constant.
    row_constant = (per_column(padded_starts) + padded_width + 1) * num_heads + head_index.reshape(columns)
    frame_offset = torch.arange(batch_size, dtype=dtype, device=device) * (padded_positions * num_heads)
    row_constant = (frame_offset[:, None, None] + row_constant).expand(batch_size, num_queries, columns)

    def corner_and_fraction(offsets: Tensor, reference: Tensor, size: Tensor) -> tuple[Tensor, Tensor]:
        """Top-left corner in [-1, size - 1] and the fraction in [0, 1] along one axis, `(B, Lq, columns)` each.

        Pixel coordinate of grid_sample(align_corners=False): location * size - 0.5; beyond the zero border it is
        clamped to the border, where both corners hold zeros as grid_sample's out-of-bounds corners do."""
        reference_pixels = reference * size[: num_levels * num_points : num_points] - 0.5  # (B, Lq, L)
        reference_pixels = (
            reference_pixels[..., None].expand(-1, -1, -1, num_points).reshape(batch_size, num_queries, 1, -1)
        )
        pixels = (offsets.reshape(batch_size, num_queries, num_heads, -1) + reference_pixels).view(
            batch_size, num_queries, columns
        )
        pixels = torch.minimum(pixels.clamp_(min=-1.0), size, out=pixels)
        corner = torch.minimum(pixels.floor(), size - 1)
        return corner, pixels.sub_(corner)

    corner_x, fraction_x = corner_and_fraction(sampling_offsets[:, :, 0], reference_points[..., 0], width)
    corner_y, fraction_y = corner_and_fraction(sampling_offsets[:, :, 1], reference_points[..., 1], height)
    rows = torch.addcmul(row_constant, corner_y, padded_width * num_heads).add_(corner_x, alpha=num_heads)
    rows = rows.to(torch.int32).view(batch_size * num_queries * num_heads, 1, -1)
    # The 4 corners (top-left, top-right, bottom-left, bottom-right) in rows, per column of a head: (4, levels*points).
    head_columns = slice(0, num_levels * num_points)
    corner_rows = torch.stack(
        (torch.zeros_like(padded_width), torch.ones_like(padded_width), padded_width, padded_width + 1)
    )[:, head_columns]
    rows = rows + (corner_rows * num_heads).to(torch.int32)  # (B*Lq*heads, 4, levels*points)

    # Bilinear weights times attention weights, in the layout of `rows`.
    attention_weights = attention_weights.reshape(batch_size, num_queries, columns)
    weight_y1 = attention_weights * fraction_y
    weight_y0 = attention_weights - weight_y1
    weight_x0 = 1 - fraction_x
    weights = value.new_empty(batch_size, num_queries, num_heads, 4, num_levels * num_points)
    for corner, (weight_y, weight_x) in enumerate(
        ((weight_y0, weight_x0), (weight_y0, fraction_x), (weight_y1, weight_x0), (weight_y1, fraction_x))
    ):
        torch.mul(
            weight_y.view(batch_size, num_queries, num_heads, -1),
            weight_x.view(batch_size, num_queries, num_heads, -1),
            out=weights[:, :, :, corner],
        )

    bag = 4 * num_levels * num_points
    output = nn.functional.embedding_bag(
        rows.view(-1, bag), padded.view(-1, head_dim), per_sample_weights=weights.view(-1, bag), mode="sum"
    )  # (B * Lq * heads, head_dim)
    return output.view(batch_size, num_queries, num_heads * head_dim)


class Mask2FormerVideoMultiscaleDeformableAttention(Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention):
    """transformers' multi-scale deformable attention (same parameters) with the gather-based sampling of
    [`multi_scale_deformable_sampling`] for CPU inference; everything else runs the upstream forward."""

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        encoder_hidden_states: Tensor | None = None,
        encoder_attention_mask: Tensor | None = None,
        position_embeddings: Tensor | None = None,
        reference_points: Tensor | None = None,
        spatial_shapes_list: list[tuple[int, int]] | None = None,
        level_start_index: Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, Tensor]:
        """Same arguments and outputs as upstream: `(output (B, Lq, C), attention weights (B, Lq, heads, L, P))`."""
        upstream = super().forward
        if not use_fast_sampling(encoder_hidden_states) or reference_points.shape[-1] != 2:
            return upstream(
                hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask, position_embeddings,
                reference_points, spatial_shapes_list, level_start_index, output_attentions,
            )  # fmt: skip
        queries = hidden_states if position_embeddings is None else hidden_states + position_embeddings
        batch_size, num_queries, _ = queries.shape
        sequence_length = encoder_hidden_states.shape[1]
        if sum(height * width for height, width in spatial_shapes_list) != sequence_length:
            raise ValueError(
                "Make sure to align the spatial shapes with the sequence length of the encoder hidden states"
            )

        value = fast_linear(encoder_hidden_states, self.value_proj.weight, self.value_proj.bias)  # (B, S, C)
        if attention_mask is not None and attention_mask.any():
            value = value.masked_fill(attention_mask[..., None], 0.0)
        value = value.view(batch_size, sequence_length, self.n_heads, self.d_model // self.n_heads)
        # Sampling offsets and attention logits from one matrix product; the offsets' output features reordered
        # from (heads, levels, points, xy) to (xy, heads, levels, points), the layout the sampling reads.
        num_columns = self.n_heads * self.n_levels * self.n_points
        offset_weight = self.sampling_offsets.weight.view(num_columns, 2, -1).transpose(0, 1).flatten(0, 1)
        offset_bias = self.sampling_offsets.bias.view(num_columns, 2).t().flatten()
        projected = fast_linear(
            queries,
            torch.cat((offset_weight, self.attention_weights.weight)),
            torch.cat((offset_bias, self.attention_weights.bias)),
        )  # (B, Lq, 3 * columns)
        sampling_offsets = projected[..., : 2 * num_columns].unflatten(
            -1, (2, self.n_heads, self.n_levels, self.n_points)
        )  # (B, Lq, 2, heads, L, P)
        attention_weights = (
            projected[..., 2 * num_columns :]
            .unflatten(-1, (self.n_heads, self.n_levels * self.n_points))
            .softmax(-1)
            .view(batch_size, num_queries, self.n_heads, self.n_levels, self.n_points)
        )
        output = multi_scale_deformable_sampling(
            value, spatial_shapes_list, sampling_offsets, reference_points, attention_weights
        )
        if output is None:
            return upstream(
                hidden_states, attention_mask, encoder_hidden_states, encoder_attention_mask, position_embeddings,
                reference_points, spatial_shapes_list, level_start_index, output_attentions,
            )  # fmt: skip
        return fast_linear(output, self.output_proj.weight, self.output_proj.bias), attention_weights


class Mask2FormerVideoPixelDecoderEncoderLayer(Mask2FormerPixelDecoderEncoderLayer):
    """transformers' pixel-decoder encoder layer (same parameters) with [`Mask2FormerVideoMultiscaleDeformableAttention`]
    and, in CPU inference, its feed-forward block through [`fast_linear`] (bias and ReLU fused into the products)."""

    def __init__(self, config):
        super().__init__(config)
        attention = self.self_attn
        self.self_attn = Mask2FormerVideoMultiscaleDeformableAttention(
            embed_dim=attention.d_model,
            num_heads=attention.n_heads,
            n_levels=attention.n_levels,
            n_points=attention.n_points,
        )

    def forward(
        self,
        hidden_states: Tensor,
        attention_mask: Tensor,
        position_embeddings: Tensor | None = None,
        reference_points: Tensor | None = None,
        spatial_shapes_list: list[tuple[int, int]] | None = None,
        level_start_index: Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[Tensor, ...]:
        """Upstream's layer: deformable self-attention, residual + norm, FFN, residual + norm (post-norm)."""
        if self.training or not use_fast_sampling(hidden_states):
            return super().forward(
                hidden_states, attention_mask, position_embeddings, reference_points, spatial_shapes_list,
                level_start_index, output_attentions,
            )  # fmt: skip
        update, attention_weights = self.self_attn(
            hidden_states=hidden_states,
            attention_mask=attention_mask,
            encoder_hidden_states=hidden_states,
            encoder_attention_mask=attention_mask,
            position_embeddings=position_embeddings,
            reference_points=reference_points,
            spatial_shapes_list=spatial_shapes_list,
            level_start_index=level_start_index,
            output_attentions=output_attentions,
        )
        hidden_states = self.self_attn_layer_norm(hidden_states + update)
        update = fast_linear(hidden_states, self.fc1.weight, self.fc1.bias, relu=True)  # (B, S, feedforward)
        update = fast_linear(update, self.fc2.weight, self.fc2.bias)
        hidden_states = self.final_layer_norm(hidden_states + update)
        if output_attentions:
            return hidden_states, attention_weights.transpose(1, 0)
        return (hidden_states,)


def use_fast_pixel_decoder_layers(pixel_decoder: nn.Module) -> None:
    """Replace the encoder layers of a transformers `Mask2FormerPixelDecoder` by
    [`Mask2FormerVideoPixelDecoderEncoderLayer`]s (same parameters and state-dict keys). Call before the weights are
    initialised or loaded: the new layers start with fresh parameters."""
    pixel_decoder.encoder.layers = nn.ModuleList(
        Mask2FormerVideoPixelDecoderEncoderLayer(pixel_decoder.config) for _ in pixel_decoder.encoder.layers
    )
