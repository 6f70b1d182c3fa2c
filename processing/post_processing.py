"""The two steps that turn model outputs into instances, written once for every path (the processor's
post-processing, whole-video and clip-by-clip inference, batch prediction, training evaluation):

1. [`select_instances`]: the top-k (query, class) pairs by score, as the official `inference_video` chooses them;
2. [`MaskGeometry`]: how a mask at the model's resolution (a quarter of the padded input) maps back to the
   original frame: bilinear upsampling to the padded size, crop to the resized (unpadded) size, bilinear resize
   to the original size; a pixel is in the mask where the resulting logit is above 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def select_instances(
    probabilities: torch.Tensor, top_k: int, threshold: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The `top_k` best entries of a (Q, K) matrix of class probabilities, those scoring above `threshold`.

    The matrix is flattened query-major (flat index = query * K + class) and ranked by score, descending; ties
    keep torch's `topk` order. Returns `(scores, labels, query_indices)`, each (N,) with N <= top_k.
    """
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    num_classes = probabilities.shape[1]
    scores = probabilities.flatten()  # (Q * K,)
    top_scores, top_indices = scores.topk(min(top_k, scores.numel()), sorted=True)
    keep = top_scores > threshold
    top_scores, top_indices = top_scores[keep], top_indices[keep]
    return top_scores, top_indices % num_classes, top_indices // num_classes


def class_probabilities(class_logits: torch.Tensor) -> torch.Tensor:
    """(Q, K + 1) class logits -> (Q, K) softmax probabilities without the "no object" column, in float32."""
    return class_logits.float().softmax(-1)[:, :-1]


@dataclass(frozen=True)
class MaskGeometry:
    """How low-resolution masks map back to the input frames of one video.

    The model predicts masks at a quarter of the padded input size; they are upsampled to `padded_size`,
    cropped to `resized_size` (the frame before padding) and resized to `target_size` (the original frame).
    """

    padded_size: tuple[int, int]
    resized_size: tuple[int, int]
    target_size: tuple[int, int]

    def __post_init__(self) -> None:
        if self.resized_size[0] > self.padded_size[0] or self.resized_size[1] > self.padded_size[1]:
            raise ValueError(f"resized size {self.resized_size} is larger than the padded size {self.padded_size}")
        if min(self.target_size) < 1:
            raise ValueError(f"target size must be positive, got {self.target_size}")

    @classmethod
    def of_masks(
        cls, low_res_size: tuple[int, int], resized_size: tuple[int, int], target_size: tuple[int, int]
    ) -> MaskGeometry:
        """The geometry of masks of `low_res_size` (the padded input size / 4)."""
        padded = (4 * int(low_res_size[0]), 4 * int(low_res_size[1]))
        return cls(padded, tuple(int(s) for s in resized_size), tuple(int(s) for s in target_size))

    @property
    def valid_low_res_size(self) -> tuple[int, int]:
        """The part of a low-resolution mask that covers the frame rather than its padding."""
        return -(-self.resized_size[0] // 4), -(-self.resized_size[1] // 4)

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, h, w) mask logits (N frames, or N masks of one frame) -> (N, H, W) float32 logits at the target size.

        The N maps are the channels of one bilinear resize, so the result does not depend on how a caller groups
        frames or masks.
        """
        logits = F.interpolate(logits[None].float(), size=self.padded_size, mode="bilinear", align_corners=False)
        logits = logits[..., : self.resized_size[0], : self.resized_size[1]]
        return F.interpolate(logits, size=self.target_size, mode="bilinear", align_corners=False)[0]
