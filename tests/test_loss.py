"""The video loss: the image criterion on one frame, whole-clip matching, per-frame mask losses."""

import torch
from conftest import tiny_config
from transformers.models.mask2former.modeling_mask2former import Mask2FormerLoss

from modeling_m2f_video.loss_m2f_video import Mask2FormerVideoHungarianMatcher, Mask2FormerVideoLoss

WEIGHTS = {"loss_cross_entropy": 2.0, "loss_mask": 5.0, "loss_dice": 5.0}


def random_predictions(batch_size: int, num_queries: int, num_frames: int, num_labels: int):
    masks = torch.randn(batch_size, num_queries, num_frames, 16, 16)
    classes = torch.randn(batch_size, num_queries, num_labels + 1)
    return masks, classes


def test_single_frame_loss_equals_the_image_loss():
    """With T = 1 the video criterion is the image criterion (same random points for the same seed)."""
    config = tiny_config(num_labels=4)
    masks, classes = random_predictions(2, config.num_queries, 1, 4)
    mask_labels = [torch.rand(3, 1, 64, 64).round(), torch.rand(1, 1, 64, 64).round()]
    class_labels = [torch.tensor([0, 3, 1]), torch.tensor([2])]

    torch.manual_seed(3)
    video_losses = Mask2FormerVideoLoss(config, WEIGHTS)(masks, classes, mask_labels, class_labels)
    torch.manual_seed(3)
    image_losses = Mask2FormerLoss(config, WEIGHTS)(
        masks[:, :, 0], classes, [labels[:, 0] for labels in mask_labels], class_labels
    )
    assert video_losses.keys() == image_losses.keys()
    for name in image_losses:
        torch.testing.assert_close(video_losses[name], image_losses[name], msg=name)


def test_matcher_uses_the_whole_clip():
    """Query 0 fits frame 0 of the track perfectly but frame 1 badly; query 1 fits both frames fairly well.

    A per-frame matcher on frame 0 would take query 0; the clip-level matcher must take query 1.
    """
    track = torch.zeros(1, 2, 16, 16)
    track[0, 0, :8] = 1  # top half in frame 0
    track[0, 1, 8:] = 1  # bottom half in frame 1
    logits = torch.full((1, 3, 2, 16, 16), -8.0)
    logits[0, 0, 0] = track[0, 0] * 16 - 8  # exact in frame 0
    logits[0, 0, 1] = track[0, 0] * 16 - 8  # wrong half in frame 1
    logits[0, 1] = track[0] * 4 - 2  # right in both frames, less confident
    classes = torch.zeros(1, 3, 3)
    matcher = Mask2FormerVideoHungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=256)
    [(queries, targets)] = matcher(logits, classes, [track], [torch.tensor([0])])
    assert queries.tolist() == [1] and targets.tolist() == [0]


def test_mask_loss_is_per_frame_and_normalised_by_tracks():
    """A nearly perfect frame and a wrong one cost about half of two wrong frames, and the dice terms of the
    frames add up (divided by the number of tracks, not of frames)."""
    config = tiny_config(num_labels=2, train_num_points=512, importance_sample_ratio=0.0)
    criterion = Mask2FormerVideoLoss(config, WEIGHTS)
    track = torch.zeros(1, 2, 16, 16)
    track[0, :, 4:12, 4:12] = 1
    indices = [(torch.tensor([0]), torch.tensor([0]))]
    num_tracks = torch.tensor(1.0)

    both_wrong = (1 - track) * 20 - 10  # (1, T, h, w): inverted in both frames
    one_wrong = both_wrong.clone()
    one_wrong[0, 0] = track[0, 0] * 20 - 10

    def dice(prediction):
        torch.manual_seed(0)
        return criterion.loss_masks(prediction[None], [track], indices, num_tracks)["loss_dice"]

    assert 0.4 * dice(both_wrong) < dice(one_wrong) < 0.6 * dice(both_wrong)
    # Dice loss per frame is at most 1; two wrong frames of one track sum to nearly 2.
    assert 1.8 < dice(both_wrong) <= 2.0
