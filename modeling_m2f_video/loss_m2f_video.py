"""The training loss of the video Mask2Former: transformers' image criterion with a clip-level matcher.

Two changes to transformers' `Mask2FormerLoss`, both from the official `VideoSetCriterion` / `VideoHungarianMatcher`:

| upstream (transformers) | video class | what changes and why |
| --- | --- | --- |
| `Mask2FormerHungarianMatcher` | [`Mask2FormerVideoHungarianMatcher`] | one random point set per video, shared by all T frames, so a query is matched to a *track* on the whole clip |
| `Mask2FormerLoss` | [`Mask2FormerVideoLoss`] | each matched (query, track) pair becomes T per-frame pairs for the image `loss_masks`; `get_num_masks` averages over processes once (upstream divides by the number of processes twice) |
"""

import torch
from accelerate import PartialState
from accelerate.utils import reduce
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerHungarianMatcher,
    Mask2FormerLoss,
    pair_wise_dice_loss,
    pair_wise_sigmoid_cross_entropy_loss,
    sample_point,
)

from .configuration import Mask2FormerVideoConfig


class Mask2FormerVideoHungarianMatcher(Mask2FormerHungarianMatcher):
    """Matches queries to ground-truth tracks using the whole clip.

    As in the official video matcher, one set of random points is drawn per video and used for all T frames, so the
    mask and dice costs compare the (T × points) samples of a query's volume with those of a track.
    """

    @torch.no_grad()
    def forward(
        self,
        masks_queries_logits: Tensor,
        class_queries_logits: Tensor,
        mask_labels: list[Tensor],
        class_labels: list[Tensor],
    ) -> list[tuple[Tensor, Tensor]]:
        """`masks_queries_logits` is `(B, Q, T, h, w)`; `mask_labels[i]` is `(N_i, T, H, W)`."""
        indices = []
        for pred_masks, pred_logits, target_masks, target_classes in zip(
            masks_queries_logits, class_queries_logits, mask_labels, class_labels
        ):
            cost_class = -pred_logits.softmax(-1)[:, target_classes]  # (Q, N)
            points = torch.rand(1, self.num_points, 2, device=pred_masks.device)
            # The frames act as channels of sample_point: every frame is sampled at the same points.
            pred_points = sample_point(pred_masks, points.expand(pred_masks.shape[0], -1, -1), align_corners=False)
            target_points = sample_point(
                target_masks.to(pred_masks), points.expand(target_masks.shape[0], -1, -1), align_corners=False
            )
            pred_points, target_points = pred_points.flatten(1), target_points.flatten(1)  # (Q, T*P), (N, T*P)
            cost_matrix = (
                self.cost_mask * pair_wise_sigmoid_cross_entropy_loss(pred_points, target_points)
                + self.cost_class * cost_class
                + self.cost_dice * pair_wise_dice_loss(pred_points, target_points)
            )
            max_value = torch.finfo(cost_matrix.dtype).max
            cost_matrix = torch.nan_to_num(cost_matrix, nan=max_value, posinf=max_value, neginf=max_value)
            query_indices, target_indices = linear_sum_assignment(cost_matrix.cpu())
            indices.append((torch.as_tensor(query_indices), torch.as_tensor(target_indices)))
        return indices


class Mask2FormerVideoLoss(Mask2FormerLoss):
    """The image Mask2Former criterion with the video matcher and per-frame mask losses.

    After matching on whole clips, the mask and dice losses treat each frame of a matched (query, track) pair as one
    2-D mask with its own importance-sampled points (as the official VideoSetCriterion does), normalised by the
    number of tracks. Class loss, no-object weight and deep supervision are the image criterion's.
    """

    def __init__(self, config: Mask2FormerVideoConfig, weight_dict: dict[str, float]):
        super().__init__(config=config, weight_dict=weight_dict)
        self.matcher = Mask2FormerVideoHungarianMatcher(
            cost_class=config.class_weight,
            cost_mask=config.mask_weight,
            cost_dice=config.dice_weight,
            num_points=config.train_num_points,
        )

    def loss_masks(
        self,
        masks_queries_logits: Tensor,
        mask_labels: list[Tensor],
        indices: list[tuple[Tensor, Tensor]],
        num_masks: Tensor,
    ) -> dict[str, Tensor]:
        """Per-frame point losses: each (query, track) match becomes T matches of 2-D masks."""
        num_frames = masks_queries_logits.shape[2]
        frame_offsets = torch.arange(num_frames)
        frame_indices = [
            (
                (queries[:, None] * num_frames + frame_offsets).flatten(),
                (targets[:, None] * num_frames + frame_offsets).flatten(),
            )
            for queries, targets in indices
        ]
        return super().loss_masks(
            masks_queries_logits.flatten(1, 2),  # (B, Q*T, h, w)
            [masks.flatten(0, 1) for masks in mask_labels],  # (N*T, H, W) per video
            frame_indices,
            num_masks,
        )

    def get_num_masks(self, class_labels: list[Tensor], device: torch.device) -> Tensor:
        """Number of tracks per process, averaged over processes (at least 1), to normalise the mask losses.

        As the official criterion does (all-reduce sum, then divide by the world size). transformers' image
        criterion averages over processes and then divides by their number again, which scales the mask and dice
        losses by the number of processes.
        """
        num_masks = torch.as_tensor(sum(len(classes) for classes in class_labels), dtype=torch.float, device=device)
        if PartialState._shared_state and PartialState().num_processes > 1:
            num_masks = reduce(num_masks, reduction="mean")
        return torch.clamp(num_masks, min=1)
