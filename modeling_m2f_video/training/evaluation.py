"""Evaluation during and after training: every video of a split predicted whole, the YouTube-VIS metric on the
main process. Video i goes to process i mod P (none is duplicated); predictions are gathered with `gather_object`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object
from tqdm.auto import tqdm

from ..configuration import Mask2FormerVideoConfig
from ..errors import UserInputError
from ..evaluation.metric import STAT_NAMES, evaluate_ytvis
from ..inference.segment import segment_video
from ..modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation
from ..processing.video_processing_m2f_video import Mask2FormerVideoProcessor
from ..processing.ytvis_dataset import YTVISVideoDataset
from ..ytvis.records import write_submission_zip
from .data import YTVISSplit

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict_split(
    model: Mask2FormerVideoForVideoInstanceSegmentation,
    processor: Mask2FormerVideoProcessor,
    split: YTVISSplit,
    accelerator: Accelerator,
    progress: bool = True,
) -> list[dict]:
    """YouTube-VIS submission records of every video of `split`, gathered from all processes on every process.

    Video i is predicted by process `i mod num_processes`, whole (all its frames in one clip, as the official
    inference), through the inference core (`segment_video`) with the model's `test_top_k` and the processor's
    test size.
    """
    model = accelerator.unwrap_model(model)
    categories = label_to_category(model.config, split)
    videos = YTVISVideoDataset(split.index, with_ground_truth=False)
    shard = range(accelerator.process_index, len(videos), accelerator.num_processes)
    was_training = model.training
    model.eval()
    records = []
    for item in tqdm(shard, desc="evaluating", disable=not (progress and accelerator.is_local_main_process)):
        video = videos[item]
        with accelerator.autocast():
            instances = segment_video(
                model, processor, video["pixel_values_videos"].permute(0, 2, 3, 1), mode="whole"
            )  # (T, 3, H, W) -> (T, H, W, 3) frames
        records.extend(instances.to_records(video["video_id"], categories))
    model.train(was_training)
    return gather_object(records)


def label_to_category(config: Mask2FormerVideoConfig, split: YTVISSplit) -> list[int]:
    """The split's category id of each model label; the model must have been trained on these categories.

    Raises:
        UserInputError: naming the split when its number of categories is not the model's.
    """
    categories = sorted(split.categories, key=lambda category: category["label"])
    if len(categories) != config.num_labels:
        raise UserInputError(
            f"--eval-data {split.path}: the evaluation data has {len(categories)} categories but the model "
            f"predicts {config.num_labels}"
        )
    return [category["id"] for category in categories]


def evaluate_split(
    model: Mask2FormerVideoForVideoInstanceSegmentation,
    processor: Mask2FormerVideoProcessor,
    split: YTVISSplit,
    accelerator: Accelerator,
    progress: bool = True,
    submission_dir: Path | None = None,
) -> dict[str, float] | None:
    """The 12 YouTube-VIS numbers of the model on `split` (on every process); `None` when it has no ground truth.

    A split without annotations (such as the official valid sets) gets its predictions written as the
    server's submission zip, `submission_dir/results.zip`, instead. The global RNG is left untouched, so
    evaluating during training does not change the training trajectory.
    """
    with torch.random.fork_rng(devices=[accelerator.device] if accelerator.device.type == "cuda" else []):
        records = predict_split(model, processor, split, accelerator, progress)
    metrics = None
    if accelerator.is_main_process:
        annotations = json.loads(split.annotation_file.read_text(encoding="utf-8"))
        if annotations.get("annotations"):
            stats = evaluate_ytvis(annotations, records).stats
            metrics = {key: float(stats[key]) for key in STAT_NAMES}
        elif submission_dir is not None:
            path = write_submission_zip(records, submission_dir / "results.zip")
            logger.warning("%s has no annotations: wrote the predictions to %s", split.annotation_file, path)
    return broadcast_object_list([metrics])[0]
