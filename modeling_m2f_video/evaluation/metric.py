"""The YouTube-VIS video instance segmentation metric, giving the official numbers.

It reproduces youtubevos/cocoapi's `ytvoseval` (YTVOS + YTVOSeval with default parameters, `segm`):

1. Spatio-temporal IoU of a predicted track and a ground-truth track: intersections and unions summed over
   all frames (a frame where one side is absent adds the other side's area to the union), 0 if the union is
   empty. Crowd ground truth uses the same IoU; it only makes matches "ignored". The per-frame intersection
   and union are those of pycocotools' `merge`, as the official code takes them, also for RLEs with empty runs,
   where `merge` can stop early (see `track_ious`).
2. Per (video, category): detections by descending score (stable), at most 100; at each IoU threshold each
   detection greedily takes the free ground truth with the highest IoU (the last one on ties), preferring
   ground truth that is not ignored (crowd or outside the area range). Crowd ground truth is never used up.
3. COCO accumulation over videos per category, area range and max detections, then the 12 summary numbers
   and per-category AP (means over the entries that are defined, -1 where none is).

Masks stay run-length encoded. The reader turns each track into one RLE of all its frames side by side
(`Track.whole`), so that one pycocotools `iou` call compares two tracks over all frames; only the pairs whose
IoU can reach the lowest threshold are compared (the others cannot change the matching), and matching is
vectorised over area ranges and IoU thresholds. Where the official code crashes, this one answers: an empty
result list gives the "no detections" numbers with a warning, and results may use uncompressed RLE. Malformed
input raises a `UserInputError` (a `ValueError`) naming the record, from `ytvis.reader`.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..ytvis.reader import GroundTruth, JsonSource, Track, parse_ground_truth, parse_results
from ..ytvis.rle import decode_rle_strings

# Default parameters of the official evaluation, computed exactly as it computes them.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = {"all": (0, 1e5**2), "small": (0, 128**2), "medium": (128**2, 256**2), "large": (256**2, 1e5**2)}

# The 12 summary numbers: (name, "AP" or "AR", IoU threshold or None for all, area range, max detections).
SUMMARY = (
    ("AP", "AP", None, "all", 100),
    ("AP50", "AP", 0.5, "all", 100),
    ("AP75", "AP", 0.75, "all", 100),
    ("APs", "AP", None, "small", 100),
    ("APm", "AP", None, "medium", 100),
    ("APl", "AP", None, "large", 100),
    ("AR1", "AR", None, "all", 1),
    ("AR10", "AR", None, "all", 10),
    ("AR100", "AR", None, "all", 100),
    ("ARs", "AR", None, "small", 100),
    ("ARm", "AR", None, "medium", 100),
    ("ARl", "AR", None, "large", 100),
)
STAT_NAMES = tuple(row[0] for row in SUMMARY)
# Per category: (name, "AP" or "AR", IoU threshold or None), over all areas and 100 detections.
CATEGORY_SUMMARY = (("AP", "AP", None), ("AP50", "AP", 0.5), ("AP75", "AP", 0.75), ("AR100", "AR", None))

METRIC_DIR = Path(__file__).resolve().parent / "youtube_vis"


@dataclass
class PairEvaluation:
    """Matching outcome of one (video, category): detections in score order, at every area range and threshold.

    `matched[a, t, d]` says detection d counts as matched (the official code stores the ground-truth id, so a
    match with a ground truth of id 0 reads as "unmatched", a quirk kept here); `ignored[a, t, d]` says it is
    neither TP nor FP; `gt_ignored[a, g]` marks crowd and out-of-range ground truth.
    """

    scores: np.ndarray
    matched: np.ndarray
    ignored: np.ndarray
    gt_ignored: np.ndarray


@dataclass
class YTVISResult:
    """The evaluation's numbers.

    `stats`: the 12 summary numbers by name; `per_category`: category id -> AP; `category_stats`: category
    id -> {AP, AP50, AP75, AR100}; `precision` (T, R, K, A, M) and `recall` (T, K, A, M) are the official
    accumulation arrays (-1 where undefined), K in `category_ids` order.
    """

    stats: dict[str, float]
    category_stats: dict[int, dict[str, float]]
    category_names: dict[int, str]
    precision: np.ndarray
    recall: np.ndarray

    @property
    def category_ids(self) -> list[int]:
        return list(self.category_stats)

    @property
    def per_category(self) -> dict[int, float]:
        return {category_id: values["AP"] for category_id, values in self.category_stats.items()}

    def to_dict(self) -> dict[str, Any]:
        """The 12 numbers by name plus `per_category` (category id -> AP), ready for JSON."""
        return {**self.stats, "per_category": self.per_category}

    def table(self, per_category: bool = False) -> str:
        """A plain-text table of the 12 numbers, and optionally of AP / AP50 / AP75 / AR100 per category."""
        lines = [f"{'metric':<8} {'value':>8}"] + [f"{name:<8} {value:>8.4f}" for name, value in self.stats.items()]
        if per_category:
            header = f"{'id':>5}  {'category':<24}" + "".join(f" {name:>8}" for name, _, _ in CATEGORY_SUMMARY)
            lines += ["", header]
            for category_id, values in self.category_stats.items():
                row = f"{category_id:>5}  {self.category_names[category_id][:24]:<24}"
                lines.append(row + "".join(f" {value:>8.4f}" for value in values.values()))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def evaluate_ytvis(gt: JsonSource, results: JsonSource) -> YTVISResult:
    """Evaluate YouTube-VIS results against ground truth, as the official evaluation does.

    `gt` is the annotation file (a dict or a path), `results` the submission (a list of records or a path).
    Inputs are not modified. Raises `UserInputError` (a ValueError) naming the record for any malformed input.
    Warns where the official comparison of two masks stops early (see `track_ious`).
    """
    ground_truth = parse_ground_truth(gt)
    detections = parse_results(results, ground_truth)
    if not detections:
        warnings.warn("empty result list: reporting the numbers for no detections", UserWarning, stacklevel=2)
    stopped_early: list[tuple[int, Track, Track]] = []
    pairs = _evaluate_pairs(ground_truth, detections, stopped_early)
    if stopped_early:
        warnings.warn(_stopped_early_message(stopped_early), UserWarning, stacklevel=2)
    category_ids = sorted(ground_truth.categories)
    precision, recall = _accumulate(pairs, sorted(ground_truth.videos), category_ids)
    return YTVISResult(
        stats={name: _mean_defined(_select(precision, recall, *spec)) for name, *spec in SUMMARY},
        category_stats={
            category_id: {
                name: _mean_defined(_select(precision, recall, kind, iou, "all", 100)[..., k])
                for name, kind, iou in CATEGORY_SUMMARY
            }
            for k, category_id in enumerate(category_ids)
        },
        category_names=ground_truth.categories,
        precision=precision,
        recall=recall,
    )


def load_ytvis_metric(**kwargs: Any):
    """The metric as an `evaluate` module, loaded offline from the folder installed with this package."""
    import evaluate

    return evaluate.load(str(METRIC_DIR), **kwargs)


# --------------------------------------------------------------------------------------------- IoU + match


def _evaluate_pairs(
    ground_truth: GroundTruth, detections: list[Track], stopped_early: list[tuple[int, Track, Track]]
) -> dict[tuple[int, int], PairEvaluation]:
    """Match every (video, category) that has ground truth or detections; add the frames where the official
    comparison of two masks stops early to `stopped_early` (see `track_ious`). Only the IoUs that can change
    the matching are computed (see `_IoUPlan`)."""
    gts_by_pair: dict[tuple[int, int], list[Track]] = defaultdict(list)
    dts_by_pair: dict[tuple[int, int], list[Track]] = defaultdict(list)
    for track in ground_truth.tracks:
        gts_by_pair[track.video_id, track.category_id].append(track)
    for track in detections:
        dts_by_pair[track.video_id, track.category_id].append(track)
    pairs = {}
    for key in gts_by_pair.keys() | dts_by_pair.keys():
        gts = gts_by_pair[key]
        dts = _top_detections(dts_by_pair[key], MAX_DETECTIONS[-1])
        pairs[key] = _match(_IoUPlan.of(dts, gts, prune=True).ious(), dts, gts)
        stopped_early += _stopped_early(dts, gts)
    return pairs


def _top_detections(detections: list[Track], limit: int) -> list[Track]:
    """The `limit` best detections by descending score; a stable sort keeps equal scores in input order."""
    order = np.argsort([-d.score for d in detections], kind="mergesort")
    return [detections[i] for i in order[:limit]]


def track_ious(detections: list[Track], gts: list[Track]) -> np.ndarray:
    """Spatio-temporal IoU of every (detection, ground truth) pair of one video: (D, G) float64.

    The official code sums, over the frames, the intersection and the union of the two masks, each frame's taken
    from pycocotools' `merge` where both masks are present (the areas of their AND and OR), and divides. Here
    each track's frames are laid side by side as one mask (`Track.whole`), so that one pycocotools `iou` call
    walks all frames of a pair and divides the same integer sums: the same float64 numbers. (Videos of 2**29
    pixels or more have no such masks: their pairs are compared frame by frame, see `_frame_by_frame_ious`.)

    RLEs may also hold empty runs after the first (`Track.zero_runs`): valid, but never written by `encode`.
    `merge` walks the runs of both masks together and stops at the first pixel where both are at an empty run,
    counting only the pixels before it, so that its intersection and union can fall short of the decoded
    masks' (a frame with a 2-pixel GT and a 10-pixel result: 2 and 2 instead of 2 and 10). That needs empty
    runs in both masks in the same frame: such pairs take their numbers frame by frame, from `merge` where both
    masks have empty runs (see `_frame_by_frame_ious`). So the IoU is always the official one.
    """
    return _IoUPlan.of(detections, gts, prune=False).ious()


@dataclass
class _IoUPlan:
    """Which IoUs of one video and category to compute, and how: `walked[d, g]` from the pair's whole-track RLEs
    (one pycocotools walk), `by_frame[d, g]` frame by frame (empty runs in both masks of a frame, see
    `track_ious`); the others are left at 0."""

    detections: list[Track]
    gts: list[Track]
    walked: np.ndarray
    by_frame: np.ndarray

    @classmethod
    def of(cls, detections: list[Track], gts: list[Track], prune: bool) -> _IoUPlan:
        """Every pair, or with `prune` only those whose IoU may reach the lowest threshold (the others do not
        change the matching, see `_may_reach_lowest_threshold`)."""
        if not (detections and gts):
            none = np.zeros((len(detections), len(gts)), dtype=bool)
            return cls(detections, gts, none, none)
        meet = _zero_runs_meet(detections, gts)
        wanted = _may_reach_lowest_threshold(detections, gts) | meet if prune else np.ones_like(meet)
        return cls(detections, gts, wanted & ~meet, wanted & meet)

    def ious(self) -> np.ndarray:
        """The planned IoUs, (D, G), 0 elsewhere: one pycocotools call per ground truth, for its detections."""
        ious = np.zeros(self.walked.shape)
        for j in np.flatnonzero(self.walked.any(axis=0)):
            rows = np.flatnonzero(self.walked[:, j])
            detections, gt = [self.detections[i] for i in rows], self.gts[j]
            if gt.whole is not None and all(d.whole is not None for d in detections):
                ious[rows, j] = mask_utils.iou([d.whole for d in detections], [gt.whole], [0])[:, 0]
            else:  # a video too large for whole-track RLEs
                ious[rows, j] = _frame_by_frame_ious(detections, [gt])[:, 0]
        for i, j in np.argwhere(self.by_frame):
            ious[i, j] = _frame_by_frame_ious([self.detections[i]], [self.gts[j]])[0, 0]
        return ious


def _may_reach_lowest_threshold(detections: list[Track], gts: list[Track]) -> np.ndarray:
    """(D, G): whether the pair's IoU may reach 0.5, the lowest IoU threshold (`IOU_THRESHOLDS[0]`).

    Matching never looks at a smaller IoU. A pair's intersection is at most I, the sum over frames of the
    smallest of the two masks' areas and the overlap of their pixel spans (`Track.spans`), so its IoU is at
    most I / (|d| + |g| - I), which is under 0.5 when 3 I < |d| + |g|: an exact test in integers. (Not for masks
    that both have empty runs in a frame, where the official IoU can exceed that of the masks: the caller
    compares those in any case.)
    """
    d_areas = np.array([d.areas for d in detections])  # (D, T)
    d_spans = np.array([d.spans for d in detections])  # (D, T, 2)
    d_totals = d_areas.sum(axis=1)
    reach = np.empty((len(detections), len(gts)), dtype=bool)
    for j, gt in enumerate(gts):
        overlap = np.minimum(d_spans[..., 1], gt.spans[:, 1]) - np.maximum(d_spans[..., 0], gt.spans[:, 0])
        bound = np.minimum(np.minimum(d_areas, gt.areas), np.maximum(overlap, 0)).sum(axis=1)
        reach[:, j] = 3 * bound >= d_totals + gt.areas.sum()
    return reach


def _zero_runs_meet(detections: list[Track], gts: list[Track]) -> np.ndarray:
    """(D, G): whether the pair's masks both have empty runs after the first in some frame."""
    d_zero_runs = np.array([d.zero_runs for d in detections], dtype=np.int64)  # (D, T)
    g_zero_runs = np.array([g.zero_runs for g in gts], dtype=np.int64)  # (G, T)
    return d_zero_runs @ g_zero_runs.T > 0


def _frame_by_frame_ious(detections: list[Track], gts: list[Track]) -> np.ndarray:
    """`track_ious` one frame at a time, with the official numbers in every case (empty runs, any video size).

    In a frame where both masks are present, the official code takes the intersection and the union from
    pycocotools' `merge`. For RLEs as pycocotools' `encode` writes them those are the true numbers, found faster
    here: intersections from `iou` in its crowd form (intersection / detection area) times the detection area,
    which is exact in float64, one call per frame for all pairs present in it; unions from the areas,
    |d| + |g| - |d & g|. A frame where both masks have empty runs after the first takes both numbers from
    `merge` (see `_merged_overlap`).
    """
    intersections = np.zeros((len(detections), len(gts)), dtype=np.int64)
    overlaps = np.zeros_like(intersections)  # sum over frames with both masks of |d| + |g| - (union of the frame)
    if detections and gts:
        d_zero_runs = np.array([d.zero_runs for d in detections])  # (D, T)
        g_zero_runs = np.array([g.zero_runs for g in gts])  # (G, T)
        zero_runs_meet = d_zero_runs.any(axis=0) & g_zero_runs.any(axis=0)  # (T,): frames that need merge
        for t in range(len(gts[0].rles)):
            d_idx = [i for i, d in enumerate(detections) if d.rles[t] is not None]
            g_idx = [j for j, g in enumerate(gts) if g.rles[t] is not None]
            if not (d_idx and g_idx):
                continue
            d_rles = [detections[i].rles[t] for i in d_idx]
            fraction = mask_utils.iou(d_rles, [gts[j].rles[t] for j in g_idx], [1] * len(g_idx))
            d_areas = np.array([detections[i].areas[t] for i in d_idx], dtype=np.float64)
            frame_intersections = np.rint(fraction * d_areas[:, None]).astype(np.int64)
            frame_overlaps = frame_intersections.copy()
            if zero_runs_meet[t]:
                both = d_zero_runs[d_idx, t][:, None] & g_zero_runs[g_idx, t][None, :]
                for a, b in np.argwhere(both):
                    detection, gt = detections[d_idx[a]], gts[g_idx[b]]
                    intersection, union, _ = _merged_overlap(detection.rles[t], gt.rles[t])
                    frame_intersections[a, b] = intersection
                    frame_overlaps[a, b] = detection.areas[t] + gt.areas[t] - union
            intersections[np.ix_(d_idx, g_idx)] += frame_intersections
            overlaps[np.ix_(d_idx, g_idx)] += frame_overlaps
    d_total = np.array([d.areas.sum() for d in detections], dtype=np.int64)
    g_total = np.array([g.areas.sum() for g in gts], dtype=np.int64)
    unions = d_total[:, None] + g_total[None, :] - overlaps
    return np.divide(intersections, unions, out=np.zeros(unions.shape), where=unions > 0)


def _merged_overlap(d_rle: dict, g_rle: dict) -> tuple[int, int, bool]:
    """Intersection and union of two masks of a frame as the official code takes them, the areas of pycocotools'
    `merge([d, g], True)` and `merge([d, g], False)`, and whether `merge` stopped before the end of the frame.

    `merge` writes its output into a buffer of (frame size + 1) runs, up to one run per step of its walk, and
    with empty runs a walk can take more steps than that (up to the two masks' run counts together): the
    official code then writes past the buffer, corrupting memory (the process aborted when we tried). So both
    masks first get that many background pixels appended, which changes neither the walk within the frame nor
    any area: the numbers are those of the official walk, on every input.
    """
    height, width = d_rle["size"]
    size = height * width
    runs, owner, _ = decode_rle_strings([_as_bytes(d_rle["counts"]), _as_bytes(g_rle["counts"])])
    padding = runs.size  # the run counts of both masks together
    padded = [_with_background_after(runs[owner == k], padding) for k in (0, 1)]
    rles = mask_utils.frPyObjects([{"size": [1, size + padding], "counts": c} for c in padded], 1, size + padding)
    union, intersection = mask_utils.merge(rles, False), mask_utils.merge(rles, True)
    walked, _, _ = decode_rle_strings([union["counts"]])
    return int(mask_utils.area(intersection)), int(mask_utils.area(union)), int(walked.sum()) < size


def _with_background_after(runs: np.ndarray, pixels: int) -> list[int]:
    """Run lengths of the same mask followed by `pixels` background pixels."""
    runs = runs.tolist()
    if len(runs) % 2 == 1:  # the last run is background
        runs[-1] += pixels
    else:
        runs.append(pixels)
    return runs


def _as_bytes(counts: str | bytes) -> bytes:
    """Compressed RLE counts as bytes, which `decode_rle_strings` reads."""
    return counts.encode("ascii") if isinstance(counts, str) else counts


def _stopped_early(detections: list[Track], gts: list[Track]) -> list[tuple[int, Track, Track]]:
    """The (frame, detection, ground truth) of one video and category where `merge` stops before the end of the
    frame, which needs empty runs in both masks (for the warning; `track_ious` has the numbers)."""
    if not (detections and gts):
        return []
    d_zero_runs = np.array([d.zero_runs for d in detections])  # (D, T), False where a frame is absent
    g_zero_runs = np.array([g.zero_runs for g in gts])  # (G, T)
    both = np.argwhere(d_zero_runs[:, None, :] & g_zero_runs[None, :, :])  # rows (detection, gt, frame)
    return [
        (int(t), detections[i], gts[j])
        for i, j, t in both
        if _merged_overlap(detections[i].rles[t], gts[j].rles[t])[2]
    ]


def _stopped_early_message(stopped_early: list[tuple[int, Track, Track]]) -> str:
    """The warning for the frames where the official comparison of two masks stopped early."""
    t, detection, gt = stopped_early[0]
    return (
        f"{len(stopped_early)} frame(s) where a result mask and a ground-truth mask both have an empty RLE run at "
        f"the same pixel, for example results[{detection.ann_id - 1}] and ground truth annotation id {gt.ann_id} "
        f"in frame {t} of video {gt.video_id}: pycocotools' merge, and with it the official evaluation, stops "
        "comparing the two masks there, and so does this metric, to give the official numbers, which then differ "
        "from those of the decoded masks; masks written by pycocotools' encode have no such runs"
    )


def _match(ious: np.ndarray, detections: list[Track], gts: list[Track]) -> PairEvaluation:
    """Greedy COCO matching of score-ordered detections, vectorised over area ranges and IoU thresholds."""
    lower, upper = (np.array(bounds, dtype=np.float64)[:, None] for bounds in zip(*AREA_RANGES.values()))
    gt_area = np.array([g.avg_area for g in gts], dtype=np.float64)
    crowd = np.array([g.iscrowd for g in gts], dtype=bool)
    gt_ignored = crowd | (gt_area < lower) | (gt_area > upper)  # (A, G)
    gt_id_nonzero = np.array([g.ann_id != 0 for g in gts], dtype=bool)
    thresholds = np.minimum(IOU_THRESHOLDS, 1 - 1e-10)[None, :, None]  # (1, T, 1)

    shape = (len(AREA_RANGES), len(IOU_THRESHOLDS), len(detections))
    matched, ignored = np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    gt_taken = np.zeros(shape[:2] + (len(gts),), dtype=bool)
    # a detection without an IoU at the lowest threshold takes no ground truth: it stays unmatched
    for d in np.flatnonzero((ious >= thresholds.min()).any(axis=1)):
        candidate = (ious[d] >= thresholds) & (~gt_taken | crowd)  # (A, T, G)
        best = _last_best(np.where(candidate & ~gt_ignored[:, None], ious[d], -1.0))
        fallback = _last_best(np.where(candidate & gt_ignored[:, None], ious[d], -1.0))
        choice = np.where(best >= 0, best, fallback)
        a, t = np.nonzero(choice >= 0)
        g = choice[a, t]
        gt_taken[a, t, g] = True
        ignored[a, t, d] = gt_ignored[a, g]
        matched[a, t, d] = gt_id_nonzero[g]
    dt_area = np.array([d.avg_area for d in detections], dtype=np.float64)
    out_of_range = (dt_area < lower) | (dt_area > upper)  # (A, D)
    ignored |= ~matched & out_of_range[:, None, :]
    return PairEvaluation(np.array([d.score for d in detections]), matched, ignored, gt_ignored)


def _last_best(values: np.ndarray) -> np.ndarray:
    """Index of the largest value along the last axis, the last one on ties; -1 where all values are negative."""
    last = values.shape[-1] - 1 - np.argmax(values[..., ::-1], axis=-1)
    return np.where(values.max(axis=-1) >= 0, last, -1)


# ---------------------------------------------------------------------------------------- accumulate


def _accumulate(
    pairs: dict[tuple[int, int], PairEvaluation], video_ids: list[int], category_ids: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """COCO accumulation: precision (T, R, K, A, M) and recall (T, K, A, M), -1 where there is no ground truth."""
    shape = (len(IOU_THRESHOLDS), len(category_ids), len(AREA_RANGES), len(MAX_DETECTIONS))
    precision = -np.ones(shape[:1] + (len(RECALL_THRESHOLDS),) + shape[1:])
    recall = -np.ones(shape)
    for k, category_id in enumerate(category_ids):
        evaluations = [pairs[v, category_id] for v in video_ids if (v, category_id) in pairs]
        for a in range(len(AREA_RANGES)):
            num_positives = sum(int(np.count_nonzero(~e.gt_ignored[a])) for e in evaluations)
            if num_positives == 0:
                continue
            for m, max_det in enumerate(MAX_DETECTIONS):
                curve = _precision_recall(evaluations, a, max_det, num_positives)
                precision[:, :, k, a, m], recall[:, k, a, m] = curve
    return precision, recall


def _precision_recall(
    evaluations: list[PairEvaluation], a: int, max_det: int, num_positives: int
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated precision at each recall threshold (T, R) and final recall (T,) for one cell."""
    scores = np.concatenate([e.scores[:max_det] for e in evaluations])
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([e.matched[a, :, :max_det] for e in evaluations], axis=1)[:, order]
    ignored = np.concatenate([e.ignored[a, :, :max_det] for e in evaluations], axis=1)[:, order]
    tp = np.cumsum(matched & ~ignored, axis=1).astype(np.float64)
    fp = np.cumsum(~matched & ~ignored, axis=1).astype(np.float64)
    num_dets = tp.shape[1]
    if num_dets == 0:
        return np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS))), np.zeros(len(IOU_THRESHOLDS))
    rc = tp / num_positives
    pr = tp / (fp + tp + np.spacing(1))
    envelope = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision made non-increasing
    precision = np.zeros((len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)))
    for t in range(len(IOU_THRESHOLDS)):
        positions = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
        reached = positions < num_dets
        precision[t, reached] = envelope[t, positions[reached]]
    return precision, rc[:, -1]


def _select(precision: np.ndarray, recall: np.ndarray, kind: str, iou: float | None, area: str, max_det: int):
    """The slice of precision (T, R, K) or recall (T, K) that one summary number averages."""
    thresholds = np.flatnonzero(IOU_THRESHOLDS == iou) if iou is not None else slice(None)
    a, m = list(AREA_RANGES).index(area), MAX_DETECTIONS.index(max_det)
    return precision[thresholds, :, :, a, m] if kind == "AP" else recall[thresholds, :, a, m]


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the entries > -1, or -1 if there is none (the official summary rule)."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0
