"""Every inference path gives the same instances for one video: the processor's post-processing, the pipeline,
clip-by-clip inference with one window covering the video, batch prediction and training-time evaluation. They
share one implementation (`processing/post_processing.py`, `inference/`, `ytvis/records.py`), so they must agree
exactly: same scores (to float rounding), labels, category ids and RLE strings."""

import json

import numpy as np
import pytest
import torch
from accelerate import Accelerator
from inference_helpers import HEIGHT, WIDTH, save_tiny_model
from transformers import pipeline

from modeling_m2f_video import Mask2FormerVideoForVideoInstanceSegmentation, Mask2FormerVideoProcessor, register
from modeling_m2f_video.batch_prediction import predict_videos
from modeling_m2f_video.inference.clip_by_clip import segment_video_by_clips
from modeling_m2f_video.pipeline_video_instance_segmentation import TASK
from modeling_m2f_video.processing.synthetic import make_synthetic_dataset
from modeling_m2f_video.processing.ytvis_dataset import YTVISVideoDataset
from modeling_m2f_video.training.data import load_split
from modeling_m2f_video.training.evaluation import predict_split
from modeling_m2f_video.ytvis.records import predictions_to_records


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A tiny model folder, a one-video validation split, and that video's frames and processor records."""
    root = tmp_path_factory.mktemp("one_path")
    model_dir = save_tiny_model(root / "model")
    splits = make_synthetic_dataset(
        root / "data", num_videos=5, num_frames=6, num_classes=3, height=HEIGHT, width=WIDTH, progress=False
    )
    split = load_split(splits["valid"].parent)
    video = YTVISVideoDataset(split.index, with_ground_truth=False)[0]
    frames = video["pixel_values_videos"].permute(0, 2, 3, 1).numpy()  # (T, H, W, 3), as decoded from JPEG
    model = Mask2FormerVideoForVideoInstanceSegmentation.from_pretrained(model_dir).eval()
    processor = Mask2FormerVideoProcessor.from_pretrained(model_dir)

    inputs = processor(frames, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    reference = processor.post_process_video_instance_segmentation(
        outputs,
        target_sizes=inputs["original_sizes"],
        top_k=model.config.test_top_k,
        resized_sizes=inputs["resized_sizes"],
    )[0]
    return {
        "model_dir": model_dir,
        "model": model,
        "processor": processor,
        "split": split,
        "video_id": video["video_id"],
        "frames": frames,
        "reference": reference,
        "records": predictions_to_records(reference, video["video_id"]),
    }


def assert_same_records(records: list[dict], expected: list[dict]) -> None:
    assert len(records) == len(expected) > 0
    for record, reference in zip(records, expected):
        assert record["category_id"] == reference["category_id"]
        assert record["score"] == pytest.approx(reference["score"], rel=1e-6)
        assert record["segmentations"] == reference["segmentations"]  # identical RLE strings, frame by frame


def test_pipeline_gives_the_processor_instances(setting):
    register()
    segmenter = pipeline(TASK, model=str(setting["model_dir"]), device="cpu")
    instances = segmenter(setting["frames"])
    reference = setting["reference"]
    assert [i["label_id"] for i in instances] == reference["labels"].tolist()
    np.testing.assert_allclose([i["score"] for i in instances], reference["scores"].numpy(), rtol=1e-6)
    for instance, masks in zip(instances, reference["masks"]):
        np.testing.assert_array_equal(np.stack(instance["masks"]), masks.numpy())


def test_one_window_clip_mode_gives_the_processor_instances(setting):
    frames = setting["frames"]
    instances = segment_video_by_clips(
        setting["model"], setting["processor"], frames, clip_length=len(frames), overlap=1
    )
    assert_same_records(instances.to_records(setting["video_id"]), setting["records"])


def test_batch_prediction_gives_the_processor_instances(setting, tmp_path):
    predict_videos(
        [setting["frames"]], model=str(setting["model_dir"]), output=tmp_path, pictures=False, progress=False
    )
    records = json.loads((tmp_path / "results.json").read_text())
    expected = [{**record, "video_id": 0} for record in setting["records"]]  # predict numbers videos from 0
    assert all(record["video_id"] == 0 for record in records)
    assert_same_records(records, expected)


def test_training_evaluation_gives_the_processor_instances(setting):
    records = predict_split(setting["model"], setting["processor"], setting["split"], Accelerator(cpu=True), False)
    assert_same_records([r for r in records if r["video_id"] == setting["video_id"]], setting["records"])
