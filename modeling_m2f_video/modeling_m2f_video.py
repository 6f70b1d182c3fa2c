"""Mask2Former for video instance segmentation (Cheng et al., 2021, "Mask2Former for Video Instance Segmentation").

The video model is transformers' image Mask2Former with the paper's three changes:

1. the backbone and pixel decoder run on every frame; the masked cross-attention of the transformer decoder then
   attends to the features of all T frames at once (T·h·w keys per level);
2. the position encoding of a key is the spatial sine encoding plus a sine encoding of its frame index;
3. each query predicts a mask volume, `einsum("bqc,btchw->bqthw", mask_embedding, mask_features)`, and the
   attention mask of the next layer is that volume resized per frame.

Every class below is a transformers Mask2Former class or a subclass of one that keeps its parameter names, so the
state dict of [`Mask2FormerVideoForVideoInstanceSegmentation`] has exactly the keys of
`Mask2FormerForUniversalSegmentation`: image checkpoints load unchanged. The whole diff over upstream
(`transformers.models.mask2former.modeling_mask2former`):

| upstream class | video class | what changes, and why |
| --- | --- | --- |
| `Mask2FormerPixelLevelModule` | `Mask2FormerVideoPixelLevelModule` | runs on the B·T frames, `frame_chunk_size` at a time (same outputs; the default is per device, `DEFAULT_FRAME_CHUNK_SIZE`); pixel-decoder encoder layers with the CPU inference fast paths of `deformable_attention.py` (same parameters); backbone adaptations of `backbone_adaptations.py` (frozen batch norm, official Swin window padding, Swin's unused final norm kept out of training) |
| `Mask2FormerTransformerModule` | `Mask2FormerVideoTransformerModule` | memory flattened over (T, h, w), t slowest; position = 2-D sine + temporal sine (change 1, 2) |
| `Mask2FormerMaskedAttentionDecoder` | `Mask2FormerVideoMaskedAttentionDecoder` | own loop: no layer drop (the official decoder has none; upstream skips layers at random with probability `config.dropout`); mask volumes of earlier layers dropped at inference once their attention mask is made |
| `Mask2FormerMaskedAttentionDecoderLayer` | `Mask2FormerVideoDecoderLayer` | attention through `scaled_dot_product_attention` with a head-broadcast mask (upstream copies the mask per head); the upstream modules run for `attn_implementation="eager"` and when attention weights are asked for |
| `Mask2FormerMaskPredictor` | `Mask2FormerVideoMaskPredictor` | mask volume per query (change 3); attention mask `(B, 1, Q, T·h·w)`, for layers whose volume is not returned made from the mask features resized per level (`attention_mask_only`) |
| `Mask2FormerLoss`, `Mask2FormerHungarianMatcher` | in `loss_m2f_video.py` | clip-level matching; per-frame mask losses; process-count normalisation as the official criterion |
| `Mask2FormerModel` | `Mask2FormerVideoModel` | input `pixel_values_videos` (B, T, 3, H, W); `pixel_mask` checked but unused (as in the official model) |
| `Mask2FormerForUniversalSegmentation` | `Mask2FormerVideoForVideoInstanceSegmentation` | the class head on every decoder prediction; upstream's `get_loss_dict`, `get_loss` and `get_auxiliary_logits` reused as they are |
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerForUniversalSegmentation,
    Mask2FormerForUniversalSegmentationOutput,
    Mask2FormerMaskedAttentionDecoder,
    Mask2FormerMaskedAttentionDecoderLayer,
    Mask2FormerMaskedAttentionDecoderOutput,
    Mask2FormerMaskPredictor,
    Mask2FormerModelOutput,
    Mask2FormerPixelLevelModule,
    Mask2FormerPixelLevelModuleOutput,
    Mask2FormerPreTrainedModel,
    Mask2FormerTransformerModule,
)

from .backbone_adaptations import freeze_batch_norms, freeze_unused_swin_norm, pad_small_swin_windows
from .configuration import Mask2FormerVideoConfig
from .deformable_attention import use_fast_pixel_decoder_layers
from .loss_m2f_video import Mask2FormerVideoLoss

# The parameters of the class head: what a new label set re-initialises.
CLASS_HEAD_KEYS = ("class_predictor.weight", "class_predictor.bias", "criterion.empty_weight")

# Frames per backbone + pixel-decoder pass at inference (no autograd) when neither the call nor
# `config.frame_chunk_size` sets it, by device type; types not listed run all frames at once. On the CPU one frame at a time is the fastest (a frame's
# activations stay in the caches; batched frames cost 1.2x per frame, benchmarks/RESULTS.md); on a GPU one pass
# over all frames keeps the device busy (the clip runs 4x faster than frame by frame there). The single source of
# truth for the default, read through [`default_frame_chunk_size`].
DEFAULT_FRAME_CHUNK_SIZE: dict[str, int] = {"cpu": 1}


def default_frame_chunk_size(device: torch.device | str) -> int | None:
    """The frame chunk size a model uses on `device` when none is configured (`None`: all frames at once)."""
    return DEFAULT_FRAME_CHUNK_SIZE.get(torch.device(device).type)


@dataclass
class Mask2FormerVideoModelOutput(Mask2FormerModelOutput):
    r"""
    Outputs of [`Mask2FormerVideoModel`]. Same fields as transformers' `Mask2FormerModelOutput`; the per-frame
    tensors of the backbone and pixel decoder have the B·T frames as their batch dimension, and
    `masks_queries_logits` holds one `(batch_size, num_queries, num_frames, height/4, width/4)` mask volume per
    decoder prediction (the first one is made from the learned queries before any decoder layer).

    With `output_attentions=True`, `attentions` holds one tensor per decoder layer, the self-attention weights
    `(batch_size, num_heads, num_queries, num_queries)`, as in the image model, and `cross_attentions` the masked
    cross-attention weights `(batch_size, num_heads, num_queries, num_frames * h * w)` of the same layers over the
    feature level each layer attends to (t slowest), as in transformers' encoder-decoder outputs.
    """

    cross_attentions: tuple[Tensor, ...] | None = None


@dataclass
class Mask2FormerVideoForVideoInstanceSegmentationOutput(Mask2FormerForUniversalSegmentationOutput):
    r"""
    Outputs of [`Mask2FormerVideoForVideoInstanceSegmentation`].

    `class_queries_logits` is `(batch_size, num_queries, num_labels + 1)` (the last column is "no object") and
    `masks_queries_logits` is `(batch_size, num_queries, num_frames, height/4, width/4)`, both from the last decoder
    layer. `auxiliary_logits` lists the same two tensors for every earlier prediction. `loss_dict` holds the weighted
    loss terms (class, mask and dice for the last layer and for every auxiliary prediction) when labels are given.
    `attentions` and `cross_attentions` are those of [`Mask2FormerVideoModelOutput`].
    """

    loss_dict: dict[str, Tensor] | None = None
    cross_attentions: tuple[Tensor, ...] | None = None


def temporal_sine_embedding(
    num_frames: int, num_features: int, device: torch.device, dtype: torch.dtype, temperature: int = 10000
) -> Tensor:
    """Sine encoding of the frame index, normalised over the clip like the spatial one: shape `(num_frames, num_features)`.

    Frame t (1-based) sits at t / (T + 1e-6) * 2π; features alternate sin and cos over `num_features / 2`
    frequencies, as in the official 3-D position encoding.
    """
    frame_position = torch.arange(1, num_frames + 1, dtype=dtype, device=device)
    frame_position = frame_position / (frame_position[-1:] + 1e-6) * 2 * math.pi
    dim_t = torch.arange(num_features, dtype=torch.int64, device=device).to(dtype)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_features)
    angles = frame_position[:, None] / dim_t  # (T, num_features)
    return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)


class Mask2FormerVideoPixelLevelModule(Mask2FormerPixelLevelModule):
    """Backbone + pixel decoder of the image model, run on frames (optionally a chunk of frames at a time).

    Chunking bounds the memory of this part in the number of frames; every frame is processed independently, so
    the outputs are identical to the unchunked run.
    """

    def __init__(self, config: Mask2FormerVideoConfig):
        super().__init__(config)
        backbone_type = config.backbone_config.model_type
        if backbone_type == "resnet" and config.backbone_frozen_batch_norm:
            freeze_batch_norms(self.encoder)
        if backbone_type == "swin":
            freeze_unused_swin_norm(self.encoder)
            if config.swin_pad_small_windows:
                pad_small_swin_windows(self.encoder)
        use_fast_pixel_decoder_layers(self.decoder)

    def forward(
        self, pixel_values: Tensor, output_hidden_states: bool = False, frame_chunk_size: int | None = None
    ) -> Mask2FormerPixelLevelModuleOutput:
        """`pixel_values` is `(frames, 3, height, width)`; every output has the frames as its batch dimension."""
        run_frames = super().forward
        if frame_chunk_size is None or frame_chunk_size >= pixel_values.shape[0]:
            return run_frames(pixel_values, output_hidden_states=output_hidden_states)
        chunk_outputs = [
            run_frames(chunk, output_hidden_states=output_hidden_states)
            for chunk in pixel_values.split(frame_chunk_size)
        ]
        return Mask2FormerPixelLevelModuleOutput(
            **{
                field: _concatenate_frames([getattr(out, field) for out in chunk_outputs])
                for field in chunk_outputs[0]
            }
        )


def _concatenate_frames(chunks: list[Tensor | tuple[Tensor, ...] | None]) -> Tensor | tuple[Tensor, ...] | None:
    """Joins per-chunk outputs (tensors or tuples of tensors) along the frame (batch) dimension."""
    if isinstance(chunks[0], Tensor):
        return torch.cat(chunks)
    return tuple(torch.cat(level_chunks) for level_chunks in zip(*chunks))


class Mask2FormerVideoMaskPredictor(Mask2FormerMaskPredictor):
    """Predicts one mask volume per query and the attention mask the next decoder layer uses.

    Parameters are those of the image predictor (the `mask_embedder` MLP); the product with the mask features runs
    over all frames, and the attention mask is the volume resized frame by frame and flattened over (T, h, w). The
    attention mask has a head dimension of 1: it is broadcast over the heads, never copied per head.
    """

    def forward(
        self, outputs: Tensor, pixel_embeddings: Tensor, attention_mask_target_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """
        Args:
            outputs: decoder queries after the layer norm, `(num_queries, batch_size, hidden_size)`.
            pixel_embeddings: mask features `(batch_size, mask_feature_size, num_frames, height, width)`, laid out
                once by the caller so that every decoder layer multiplies them without a copy.
            attention_mask_target_size: `(h, w)` of the feature level the next layer attends to.

        Returns:
            The mask logits `(batch_size, num_queries, num_frames, height, width)` and the boolean attention mask
            `(batch_size, 1, num_queries, num_frames * h * w)`, True where attention is blocked.
        """
        mask_embeddings = self.mask_embedder(outputs.transpose(0, 1))  # (B, Q, C)
        batch_size, _, num_frames, height, width = pixel_embeddings.shape
        # einsum("bqc,bcthw->bqthw") as one batched matrix product on the (B, C, T*H*W) view.
        outputs_mask = torch.bmm(mask_embeddings, pixel_embeddings.flatten(2))
        outputs_mask = outputs_mask.view(batch_size, -1, num_frames, height, width)  # (B, Q, T, H, W)

        num_queries = outputs_mask.shape[1]
        attention_mask = nn.functional.interpolate(
            outputs_mask.flatten(0, 1), size=attention_mask_target_size, mode="bilinear", align_corners=False
        )  # (B*Q, T, h, w)
        # Blocked where sigmoid(logit) < 0.5, i.e. logit < 0.
        attention_mask = (attention_mask.view(batch_size, 1, num_queries, -1) < 0).detach()
        return outputs_mask, attention_mask

    def attention_mask_only(self, outputs: Tensor, level_embeddings: Tensor) -> Tensor:
        """The attention mask of [`forward`] without the full-resolution mask volume, for layers whose volume is
        not returned.

        Bilinear resizing is linear in the mask and acts on each frame's (H, W) alone, so resizing the volume
        `mask_embedding · features` equals `mask_embedding · (resized features)`. With the mask features resized
        once per level (`level_embeddings`, `(batch_size, mask_feature_size, num_frames * h * w)`), a layer
        multiplies over the h·w positions of its level instead of the H/4·W/4 ones (16 to 64 times fewer at the
        three levels) and never forms the (B, Q, T, H/4, W/4) volume. Same mask up to float rounding.
        """
        mask_embeddings = self.mask_embedder(outputs.transpose(0, 1))  # (B, Q, C)
        logits = torch.bmm(mask_embeddings, level_embeddings)  # (B, Q, T*h*w)
        return (logits[:, None] < 0).detach()  # (B, 1, Q, T*h*w)


def _sdpa_heads(states: Tensor, num_heads: int) -> Tensor:
    """`(length, batch, channels)` -> `(batch, heads, length, channels / heads)`."""
    length, batch_size, channels = states.shape
    return states.view(length, batch_size, num_heads, channels // num_heads).permute(1, 2, 0, 3)


def _sdpa(query: Tensor, key: Tensor, value: Tensor, num_heads: int, allowed: Tensor | None, dropout: float) -> Tensor:
    """Multi-head attention on projected `(length, batch, channels)` states; returns `(query length, batch, channels)`.

    `allowed` is a boolean mask broadcast over heads, `(batch, 1, query length, key length)`, True where a query may
    attend to a key.
    """
    output = nn.functional.scaled_dot_product_attention(
        _sdpa_heads(query, num_heads),
        _sdpa_heads(key, num_heads),
        _sdpa_heads(value, num_heads),
        attn_mask=allowed,
        dropout_p=dropout,
    )  # (B, heads, L, d)
    return output.permute(2, 0, 1, 3).flatten(2)


class Mask2FormerVideoDecoderLayer(Mask2FormerMaskedAttentionDecoderLayer):
    """The image decoder layer (masked cross-attention, self-attention, FFN) computing attention with
    `scaled_dot_product_attention` and a boolean mask broadcast over heads.

    Parameters are the image layer's (`cross_attn` is an `nn.MultiheadAttention`, `self_attn` a
    `Mask2FormerAttention`); only the computation changes. The image layer's own attention modules run instead when
    attention weights are requested or the model was loaded with `attn_implementation="eager"`.
    """

    def forward(
        self,
        hidden_states: Tensor,
        memory: Tensor,
        memory_position_embeddings: Tensor,
        query_position_embeddings: Tensor,
        blocked: Tensor,
        output_attentions: bool = False,
    ) -> tuple[Tensor, ...]:
        """
        Args:
            hidden_states: queries `(Q, B, C)`.
            memory: keys and values of this layer's feature level over all frames, `(T*h*w, B, C)`.
            memory_position_embeddings: their spatio-temporal position encoding, `(T*h*w, B, C)`.
            query_position_embeddings: `(Q, B, C)`.
            blocked: `(B, 1, Q, T*h*w)`, True where a query may not attend to a key.

        Returns:
            `(hidden_states,)`, and with `output_attentions` also the self-attention weights `(B, heads, Q, Q)` and
            the cross-attention weights `(B, heads, Q, T*h*w)`, in the order of the image layer's outputs.
        """
        eager = output_attentions or self.config._attn_implementation == "eager"

        queries = self.cross_attn_layer_norm(hidden_states) if self.pre_norm else hidden_states
        update, cross_attention_weights = self._cross_attention(
            queries, query_position_embeddings, memory, memory_position_embeddings, blocked, eager
        )
        hidden_states = self._add_residual(hidden_states, update, self.cross_attn_layer_norm)

        queries = self.self_attn_layer_norm(hidden_states) if self.pre_norm else hidden_states
        update, self_attention_weights = self._self_attention(queries, query_position_embeddings, eager)
        hidden_states = self._add_residual(hidden_states, update, self.self_attn_layer_norm)

        queries = self.final_layer_norm(hidden_states) if self.pre_norm else hidden_states
        update = self.activation_fn(self.fc1(queries))
        update = self.fc2(nn.functional.dropout(update, p=self.activation_dropout, training=self.training))
        hidden_states = self._add_residual(hidden_states, update, self.final_layer_norm)

        if output_attentions:
            return hidden_states, self_attention_weights, cross_attention_weights
        return (hidden_states,)

    def _add_residual(self, residual: Tensor, update: Tensor, norm: nn.LayerNorm) -> Tensor:
        """Residual connection; post-norm layers normalise the sum (pre-norm ones normalised the input)."""
        hidden_states = residual + nn.functional.dropout(update, p=self.dropout, training=self.training)
        return hidden_states if self.pre_norm else norm(hidden_states)

    def _cross_attention(
        self, queries, query_position_embeddings, memory, memory_position_embeddings, blocked, eager
    ) -> tuple[Tensor, Tensor | None]:
        """Masked attention of the queries (+ position) to the memory (+ position for keys)."""
        query, key = queries + query_position_embeddings, memory + memory_position_embeddings
        attention = self.cross_attn
        if eager:
            per_head_mask = blocked.expand(-1, attention.num_heads, -1, -1).flatten(0, 1)  # (B*heads, Q, S)
            # Per-head weights (B, heads, Q, S), the layout of transformers' attention outputs.
            return attention(
                query, key, memory, attn_mask=per_head_mask, need_weights=True, average_attn_weights=False
            )
        weight_q, weight_k, weight_v = attention.in_proj_weight.chunk(3)
        bias_q, bias_k, bias_v = attention.in_proj_bias.chunk(3)
        output = _sdpa(
            nn.functional.linear(query, weight_q, bias_q),
            nn.functional.linear(key, weight_k, bias_k),
            nn.functional.linear(memory, weight_v, bias_v),
            attention.num_heads,
            allowed=~blocked,
            dropout=attention.dropout if self.training else 0.0,
        )
        return attention.out_proj(output), None

    def _self_attention(self, queries, query_position_embeddings, eager) -> tuple[Tensor, Tensor | None]:
        """Self-attention between the queries (position added to queries and keys, not to values)."""
        attention = self.self_attn
        if eager:
            return attention(
                hidden_states=queries, position_embeddings=query_position_embeddings, output_attentions=True
            )
        positioned = queries + query_position_embeddings
        output = _sdpa(
            attention.q_proj(positioned),
            attention.k_proj(positioned),
            attention.v_proj(queries),
            attention.num_heads,
            allowed=None,
            dropout=attention.dropout if self.training else 0.0,
        )
        return attention.out_proj(output), None


class Mask2FormerVideoMaskedAttentionDecoder(Mask2FormerMaskedAttentionDecoder):
    """Upstream's masked-attention decoder with video layers and mask predictor, run over the memory of all frames.

    Same attributes and parameters as upstream (`layers`, `layernorm`, `mask_predictor`). Each layer attends to one
    feature level (cycling low to high resolution) with the attention mask made from the previous prediction. The
    loop is written out because it differs from upstream's: no layer drop, and the mask volumes of earlier layers
    are only kept when asked for (training with deep supervision, auxiliary outputs); at inference they are dropped
    as soon as their attention mask is made, which bounds memory.
    """

    def __init__(self, config: Mask2FormerVideoConfig):
        super().__init__(config)
        self.layers = nn.ModuleList([Mask2FormerVideoDecoderLayer(config) for _ in range(self.decoder_layers)])
        self.mask_predictor = Mask2FormerVideoMaskPredictor(
            hidden_size=config.hidden_dim,
            num_heads=config.num_attention_heads,
            mask_feature_size=config.mask_feature_size,
        )

    def forward(
        self,
        query_features: Tensor,
        query_position_embeddings: Tensor,
        memories: list[Tensor],
        memory_position_embeddings: list[Tensor],
        mask_features: Tensor,
        level_sizes: list[tuple[int, int]],
        output_all_predictions: bool = True,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> Mask2FormerMaskedAttentionDecoderOutput:
        """
        Args:
            query_features, query_position_embeddings: `(Q, B, C)`.
            memories, memory_position_embeddings: per level, `(T*h*w, B, C)`.
            mask_features: `(B, C, T, H/4, W/4)`.
            level_sizes: `(h, w)` per level.
            output_all_predictions: keep the prediction (normed queries and mask volume) of every layer, not only
                the last one.
            output_attentions: return the self-attention weights of every layer in `attentions` (one tensor per
                layer, as upstream) and the cross-attention weights in `cross_attentions`.
        """
        hidden_states = query_features
        all_hidden_states = [] if output_hidden_states else None
        self_attentions = [] if output_attentions else None
        cross_attentions = [] if output_attentions else None
        normed_states, mask_predictions = [], []

        # When only the last prediction is returned, earlier layers need their mask volume only as the next
        # layer's attention mask: make it from the mask features resized once per level (see
        # `Mask2FormerVideoMaskPredictor.attention_mask_only`).
        level_embeddings = None
        if not output_all_predictions:
            batch_size, channels = mask_features.shape[:2]
            level_embeddings = [
                nn.functional.interpolate(
                    mask_features.flatten(1, 2), size=level_size, mode="bilinear", align_corners=False
                ).view(batch_size, channels, -1)  # (B, C, T*h*w)
                for level_size in level_sizes
            ]

        def predict(normed: Tensor, level: int, last: bool) -> tuple[Tensor | None, Tensor | None]:
            """The mask volume (when it is returned) and the attention mask at `level` (unless it is the last)."""
            if level_embeddings is None:
                return self.mask_predictor(normed, mask_features, level_sizes[level])
            if last:
                return self.mask_predictor(normed, mask_features, level_sizes[level])[0], None
            return None, self.mask_predictor.attention_mask_only(normed, level_embeddings[level])

        normed = self.layernorm(hidden_states)
        masks, blocked = predict(normed, 0, last=not self.layers)
        for index, layer in enumerate(self.layers):
            if output_all_predictions:
                normed_states.append(normed)
                mask_predictions.append(masks)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            level = index % self.num_feature_levels
            # A query whose mask is empty at this level attends everywhere instead of nowhere.
            blocked = blocked & ~blocked.all(dim=-1, keepdim=True)
            layer_outputs = layer(
                hidden_states,
                memories[level],
                memory_position_embeddings[level],
                query_position_embeddings,
                blocked,
                output_attentions,
            )
            hidden_states = layer_outputs[0]
            if output_attentions:
                self_attentions.append(layer_outputs[1])
                cross_attentions.append(layer_outputs[2])
            normed = self.layernorm(hidden_states)
            masks, blocked = predict(normed, (index + 1) % self.num_feature_levels, last=index == len(self.layers) - 1)

        normed_states.append(normed)
        mask_predictions.append(masks)
        if output_hidden_states:
            all_hidden_states.append(hidden_states)
        return Mask2FormerMaskedAttentionDecoderOutput(
            last_hidden_state=hidden_states.transpose(0, 1),
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(self_attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions else None,
            intermediate_hidden_states=tuple(normed_states),
            masks_queries_logits=tuple(mask_predictions),
        )


class Mask2FormerVideoTransformerModule(Mask2FormerTransformerModule):
    """Upstream's transformer module with the video decoder, attending over the keys of all frames at once.

    The memory of every level is flattened over (T, h, w) with t slowest, and its position encoding is the spatial
    sine encoding plus the temporal one. Parameters and their names are upstream's.
    """

    def __init__(self, in_features: int, config: Mask2FormerVideoConfig):
        super().__init__(in_features, config)
        self.decoder = Mask2FormerVideoMaskedAttentionDecoder(config)

    def forward(
        self,
        multi_scale_features: tuple[Tensor, ...],
        mask_features: Tensor,
        num_frames: int,
        output_all_predictions: bool = True,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
    ) -> Mask2FormerMaskedAttentionDecoderOutput:
        """
        Args:
            multi_scale_features: three pixel-decoder maps, low to high resolution, each `(B*T, C, h, w)`.
            mask_features: `(B*T, mask_feature_size, H/4, W/4)`.
            num_frames: T.
        """
        memories, memory_position_embeddings, level_sizes = [], [], []
        for level in range(self.num_feature_levels):
            features = multi_scale_features[level]
            frames, _, height, width = features.shape
            batch_size = frames // num_frames
            level_sizes.append((height, width))

            memory = self.input_projections[level](features) + self.level_embed.weight[level][None, :, None, None]
            memory = memory.view(batch_size, num_frames, -1, height * width)  # (B, T, C, h*w)
            memories.append(memory.permute(1, 3, 0, 2).flatten(0, 1))  # (T*h*w, B, C)

            spatial = self.position_embedder((batch_size, 1, height, width), features.device, features.dtype)
            temporal = temporal_sine_embedding(num_frames, spatial.shape[1], features.device, features.dtype)
            position = spatial[:, None] + temporal[None, :, :, None, None]  # (B, T, C, h, w)
            memory_position_embeddings.append(position.flatten(3).permute(1, 3, 0, 2).flatten(0, 1))

        return self.decoder(
            query_features=self.queries_features.weight.unsqueeze(1).repeat(1, batch_size, 1),  # (Q, B, C)
            query_position_embeddings=self.queries_embedder.weight.unsqueeze(1).repeat(1, batch_size, 1),
            memories=memories,
            memory_position_embeddings=memory_position_embeddings,
            # (B*T, C, H, W) -> (B, C, T, H, W), contiguous: the layout every layer's mask product reads.
            mask_features=mask_features.view(batch_size, num_frames, *mask_features.shape[1:])
            .transpose(1, 2)
            .contiguous(),
            level_sizes=level_sizes,
            output_all_predictions=output_all_predictions,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )


class Mask2FormerVideoPreTrainedModel(Mask2FormerPreTrainedModel):
    config_class = Mask2FormerVideoConfig
    config: Mask2FormerVideoConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    # Attention runs through scaled_dot_product_attention; `attn_implementation="eager"` selects the image layers'
    # own attention modules (the reference path).
    _supports_sdpa = True

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        """`set_attn_implementation` may switch these models after construction: every decoder layer reads
        `config._attn_implementation` at each forward call, so the switch takes effect at the next call.

        transformers otherwise guesses the answer from the source of the model's module (an `...Attention(nn.Module)`
        class that does not call its attention-function registry means no, an unreadable source means no); it is
        stated here instead, so that it depends neither on that heuristic nor on the source being readable."""
        return True


def _check_video_input(pixel_values_videos: Tensor, pixel_mask: Tensor | None) -> None:
    """Raises a ValueError naming the problem when the input is not a batch of RGB videos."""
    if not isinstance(pixel_values_videos, Tensor):
        raise ValueError(f"pixel_values_videos must be a torch.Tensor, got {type(pixel_values_videos).__name__}")
    if pixel_values_videos.ndim != 5:
        raise ValueError(
            "pixel_values_videos must have shape (batch_size, num_frames, 3, height, width), "
            f"got {pixel_values_videos.ndim} dimensions: {tuple(pixel_values_videos.shape)}"
        )
    batch_size, num_frames, num_channels, height, width = pixel_values_videos.shape
    if num_frames == 0:
        raise ValueError("pixel_values_videos has 0 frames; a video needs at least one frame")
    if num_channels != 3:
        raise ValueError(f"pixel_values_videos must have 3 (RGB) channels in dimension 2, got {num_channels}")
    if pixel_mask is not None and tuple(pixel_mask.shape) != (batch_size, height, width):
        raise ValueError(
            f"pixel_mask must have shape {(batch_size, height, width)} to match pixel_values_videos, "
            f"got {tuple(pixel_mask.shape)}"
        )


class Mask2FormerVideoModel(Mask2FormerVideoPreTrainedModel):
    """Backbone, pixel decoder and the spatio-temporal transformer decoder, without the class head."""

    def __init__(self, config: Mask2FormerVideoConfig):
        super().__init__(config)
        self.pixel_level_module = Mask2FormerVideoPixelLevelModule(config)
        self.transformer_module = Mask2FormerVideoTransformerModule(in_features=config.feature_size, config=config)
        self.post_init()

    def forward(
        self,
        pixel_values_videos: Tensor,
        pixel_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        output_all_predictions: bool = True,
        frame_chunk_size: int | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Mask2FormerVideoModelOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`):
                Normalised, padded frames, as [`Mask2FormerVideoProcessor`] returns them. Videos of a batch share T.
            pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
                1 for real pixels, 0 for padding. Accepted for API compatibility and checked; like the official
                model, the network processes the padded border as image content, so it does not change the outputs.
            output_all_predictions (`bool`, defaults to `True`):
                Return the prediction of every decoder layer in `masks_queries_logits` and
                `transformer_decoder_intermediate_states`. With `False` only the last one is kept, and the mask
                volumes of earlier layers are freed as soon as they have served as attention masks.
            frame_chunk_size (`int`, *optional*):
                Run the backbone and pixel decoder on this many frames at a time (same outputs, less peak memory);
                defaults to `config.frame_chunk_size`, and where that is `None` to the fastest setting for the
                device at inference ([`default_frame_chunk_size`]: one frame at a time on the CPU, all frames at
                once on a GPU; all frames at once whenever autograd is on).
        """
        _check_video_input(pixel_values_videos, pixel_mask)
        frame_chunk_size = frame_chunk_size if frame_chunk_size is not None else self.config.frame_chunk_size
        if frame_chunk_size is not None and frame_chunk_size < 1:
            raise ValueError(f"frame_chunk_size must be a positive number of frames, got {frame_chunk_size}")
        if frame_chunk_size is None and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            # The device's default applies to inference. With autograd all frames go at once as before (the
            # returned per-frame hidden states are then the tensors the loss was computed from), and so do traced
            # graphs (torch.compile, the ONNX export): a loop over chunks would tie the graph to the traced T.
            frame_chunk_size = default_frame_chunk_size(pixel_values_videos.device)
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict

        num_frames = pixel_values_videos.shape[1]
        pixel_level_output = self.pixel_level_module(
            pixel_values_videos.flatten(0, 1),  # (B*T, 3, H, W)
            output_hidden_states=output_hidden_states,
            frame_chunk_size=frame_chunk_size,
        )
        decoder_output = self.transformer_module(
            multi_scale_features=pixel_level_output.decoder_hidden_states,
            mask_features=pixel_level_output.decoder_last_hidden_state,
            num_frames=num_frames,
            output_all_predictions=output_all_predictions,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )

        output = Mask2FormerVideoModelOutput(
            encoder_last_hidden_state=pixel_level_output.encoder_last_hidden_state,
            pixel_decoder_last_hidden_state=pixel_level_output.decoder_last_hidden_state,
            transformer_decoder_last_hidden_state=decoder_output.last_hidden_state,
            encoder_hidden_states=pixel_level_output.encoder_hidden_states if output_hidden_states else None,
            pixel_decoder_hidden_states=pixel_level_output.decoder_hidden_states if output_hidden_states else None,
            transformer_decoder_hidden_states=decoder_output.hidden_states if output_hidden_states else None,
            transformer_decoder_intermediate_states=decoder_output.intermediate_hidden_states,
            attentions=decoder_output.attentions,
            masks_queries_logits=decoder_output.masks_queries_logits,
            cross_attentions=decoder_output.cross_attentions,
        )
        return output if return_dict else output.to_tuple()


class Mask2FormerVideoForVideoInstanceSegmentation(Mask2FormerVideoPreTrainedModel):
    """[`Mask2FormerVideoModel`] with the class head, the training loss and hooks for post-processing.

    Example:

    ```python
    >>> import numpy as np, torch
    >>> from modeling_m2f_video import (
    ...     Mask2FormerVideoConfig, Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor
    ... )
    >>> model = Mask2FormerVideoForVideoInstanceSegmentation(Mask2FormerVideoConfig.from_preset("r50-ytvis2019")).eval()
    >>> processor = Mask2FormerVideoProcessor()
    >>> video = np.zeros((4, 360, 640, 3), dtype=np.uint8)  # (T, H, W, 3)
    >>> inputs = processor(video, return_tensors="pt")
    >>> with torch.no_grad():
    ...     outputs = model(**inputs)
    >>> outputs.masks_queries_logits.shape  # (B, Q, T, H/4, W/4)
    torch.Size([1, 100, 4, 96, 160])
    ```
    """

    def __init__(self, config: Mask2FormerVideoConfig):
        super().__init__(config)
        self.model = Mask2FormerVideoModel(config)
        self.weight_dict = {
            "loss_cross_entropy": config.class_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.class_predictor = nn.Linear(config.hidden_dim, config.num_labels + 1)
        self.criterion = Mask2FormerVideoLoss(config=config, weight_dict=self.weight_dict)
        self.post_init()

    # Loss weighting and the auxiliary outputs are upstream's, unchanged.
    get_loss_dict = Mask2FormerForUniversalSegmentation.get_loss_dict
    get_loss = Mask2FormerForUniversalSegmentation.get_loss
    get_auxiliary_logits = Mask2FormerForUniversalSegmentation.get_auxiliary_logits

    def load_image_weights(self, state_dict: dict[str, Tensor], new_class_head: bool = False) -> None:
        """Load the weights of an image Mask2Former (`Mask2FormerForUniversalSegmentation.state_dict()`, or a video
        model's: the keys are the same) into this model.

        With `new_class_head`, the class head (`CLASS_HEAD_KEYS`) keeps this model's fresh initialisation, for a
        label set that differs from the checkpoint's. Raises a ValueError naming the keys that do not fit.
        """
        kept = {key: value for key, value in state_dict.items() if not (new_class_head and key in CLASS_HEAD_KEYS)}
        result = self.load_state_dict(kept, strict=False)
        missing = [key for key in result.missing_keys if not (new_class_head and key in CLASS_HEAD_KEYS)]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"the weights do not fit the video model: missing {missing}, unexpected {result.unexpected_keys}"
            )

    def forward(
        self,
        pixel_values_videos: Tensor,
        mask_labels: list[Tensor] | None = None,
        class_labels: list[Tensor] | None = None,
        pixel_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_auxiliary_logits: bool | None = None,
        output_attentions: bool | None = None,
        frame_chunk_size: int | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Mask2FormerVideoForVideoInstanceSegmentationOutput | tuple:
        r"""
        Args:
            pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_frames, 3, height, width)`):
                Normalised, padded frames from [`Mask2FormerVideoProcessor`].
            mask_labels (`list[torch.Tensor]`, *optional*):
                Per video, the ground-truth track masks `(num_tracks, num_frames, height, width)` at the padded input
                size (a track absent from a frame has an empty mask there).
            class_labels (`list[torch.LongTensor]`, *optional*):
                Per video, the class of each track `(num_tracks,)`, in `[0, num_labels)`.
            pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
                See [`Mask2FormerVideoModel.forward`].
            output_auxiliary_logits (`bool`, *optional*):
                Whether to return the predictions of every decoder layer in `auxiliary_logits`.
            frame_chunk_size (`int`, *optional*):
                See [`Mask2FormerVideoModel.forward`].
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_auxiliary_logits = (
            output_auxiliary_logits if output_auxiliary_logits is not None else self.config.output_auxiliary_logits
        )
        compute_loss = mask_labels is not None and class_labels is not None
        if (mask_labels is None) != (class_labels is None):
            raise ValueError("Training needs both mask_labels and class_labels; only one of them was given")
        if compute_loss:
            self._check_labels(mask_labels, class_labels, pixel_values_videos.shape[:2])
        deep_supervision = compute_loss and self.config.use_auxiliary_loss
        outputs = self.model(
            pixel_values_videos=pixel_values_videos,
            pixel_mask=pixel_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_all_predictions=deep_supervision or bool(output_auxiliary_logits),
            frame_chunk_size=frame_chunk_size,
            return_dict=True,
        )

        # One class prediction per decoder prediction (the layer-normed queries), (B, Q, K+1) each.
        class_queries_logits = [
            self.class_predictor(queries.transpose(0, 1))
            for queries in outputs.transformer_decoder_intermediate_states
        ]
        masks_queries_logits = outputs.masks_queries_logits
        auxiliary_logits = self.get_auxiliary_logits(class_queries_logits, masks_queries_logits)

        loss, loss_dict = None, None
        if compute_loss:
            loss_dict = self.get_loss_dict(
                masks_queries_logits[-1],
                class_queries_logits[-1],
                mask_labels,
                class_labels,
                auxiliary_logits if deep_supervision else None,
            )
            loss = self.get_loss(loss_dict)

        output = Mask2FormerVideoForVideoInstanceSegmentationOutput(
            loss=loss,
            class_queries_logits=class_queries_logits[-1],
            masks_queries_logits=masks_queries_logits[-1],
            auxiliary_logits=auxiliary_logits if output_auxiliary_logits else None,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            pixel_decoder_last_hidden_state=outputs.pixel_decoder_last_hidden_state,
            transformer_decoder_last_hidden_state=outputs.transformer_decoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            pixel_decoder_hidden_states=outputs.pixel_decoder_hidden_states,
            transformer_decoder_hidden_states=outputs.transformer_decoder_hidden_states,
            attentions=outputs.attentions,
            loss_dict=loss_dict,
            cross_attentions=outputs.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    def _check_labels(self, mask_labels: list[Tensor], class_labels: list[Tensor], batch_and_frames: torch.Size):
        """Raises a ValueError naming the video whose labels do not fit the input, before the loss sees them."""
        batch_size, num_frames = batch_and_frames
        if len(mask_labels) != batch_size or len(class_labels) != batch_size:
            raise ValueError(
                f"Expected one mask_labels and one class_labels entry per video ({batch_size}), "
                f"got {len(mask_labels)} and {len(class_labels)}"
            )
        for video, (masks, classes) in enumerate(zip(mask_labels, class_labels)):
            if masks.ndim != 4 or masks.shape[1] != num_frames:
                raise ValueError(
                    f"mask_labels[{video}] must have shape (num_tracks, {num_frames}, height, width), "
                    f"got {tuple(masks.shape)}"
                )
            if classes.shape != (masks.shape[0],):
                raise ValueError(
                    f"class_labels[{video}] must have shape ({masks.shape[0]},) to match mask_labels[{video}], "
                    f"got {tuple(classes.shape)}"
                )
            if classes.numel() and (classes.min() < 0 or classes.max() >= self.config.num_labels):
                raise ValueError(
                    f"class_labels[{video}] must lie in [0, {self.config.num_labels}), got {classes.tolist()}"
                )
