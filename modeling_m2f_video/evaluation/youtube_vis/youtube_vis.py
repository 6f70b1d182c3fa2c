"""The YouTube-VIS video instance segmentation metric as a Hugging Face `evaluate` module.

A thin wrapper around `modeling_m2f_video.evaluation.metric`, which reproduces the official YouTube-VIS evaluation
(youtubevos/cocoapi ytvoseval): mask AP / AR over spatio-temporal IoU. One example is one video; since the
records are nested and of several shapes (RLE, null frames), they are stored as JSON strings.
"""

import json

import datasets
import evaluate

from modeling_m2f_video.evaluation.metric import evaluate_ytvis

_DESCRIPTION = """\
YouTube-VIS video instance segmentation metric: the 12 numbers AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100,
ARs, ARm, ARl and per-category AP, exactly as the official YouTube-VIS evaluation computes them.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: one entry per video, the list of that video's submission records
        `{"video_id", "category_id", "score", "segmentations": [RLE or None per frame]}` (may be empty).
    references: one entry per video, `{"video": {"id", "height", "width", "length"},
        "annotations": [YouTube-VIS annotations of that video]}`.
    categories (optional, to `compute`): the annotation file's `categories` list; by default the category
        ids seen in references and predictions (the summary numbers do not depend on categories that appear
        in neither).
Returns:
    dict with the 12 numbers under "AP", "AP50", ..., "ARl" (-1 where undefined) and "per_category"
    (category id -> AP).
Examples:
    >>> from modeling_m2f_video.evaluation.metric import load_ytvis_metric
    >>> from modeling_m2f_video.ytvis.reader import split_by_video
    >>> metric = load_ytvis_metric()
    >>> predictions, references = split_by_video("gt.json", "results.json")
    >>> metric.add_batch(predictions=predictions, references=references)
    >>> numbers = metric.compute()
"""

_CITATION = """\
@inproceedings{yang2019video,
  title={Video Instance Segmentation},
  author={Yang, Linjie and Fan, Yuchen and Xu, Ning},
  booktitle={ICCV},
  year={2019}
}
"""


def _as_json(value):
    """Examples are stored as JSON strings; already-encoded strings pass through."""
    return value if isinstance(value, str) else json.dumps(value)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class YoutubeVis(evaluate.Metric):
    """YouTube-VIS mask AP / AR, one example per video."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one video: its list of result records and its reference (see the inputs description)."""
        super().add(prediction=_as_json(prediction), reference=_as_json(reference), **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add several videos: lists of per-video result-record lists and of per-video references."""
        super().add_batch(
            predictions=None if predictions is None else [_as_json(p) for p in predictions],
            references=None if references is None else [_as_json(r) for r in references],
            **kwargs,
        )

    def _compute(self, predictions, references, categories=None):
        videos = [json.loads(reference) for reference in references]
        for index, video in enumerate(videos):
            if not (isinstance(video, dict) and isinstance(video.get("annotations"), list) and "video" in video):
                raise ValueError(f"references[{index}]: needs a 'video' object and an 'annotations' list")
        results = [record for prediction in predictions for record in json.loads(prediction)]
        annotations = [annotation for video in videos for annotation in video["annotations"]]
        if categories is None:
            items = [item for item in annotations + results if isinstance(item, dict)]
            seen = {item["category_id"] for item in items if isinstance(item.get("category_id"), int)}
            categories = [{"id": category_id, "name": str(category_id)} for category_id in sorted(seen)]
        ground_truth = {"videos": [v["video"] for v in videos], "categories": categories, "annotations": annotations}
        return evaluate_ytvis(ground_truth, results).to_dict()
