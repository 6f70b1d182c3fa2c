"""The YouTube-VIS metric: official numbers on the shared fixtures, protocol edge cases with hand-derived
answers, agreement with a slow reference written on numpy masks, the `evaluate` module and the CLI."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from modeling_m2f_video.cli import EXIT_BAD_INPUT, main
from modeling_m2f_video.evaluation.metric import METRIC_DIR, STAT_NAMES, evaluate_ytvis, load_ytvis_metric, track_ious
from modeling_m2f_video.ytvis.reader import parse_ground_truth, parse_results, split_by_video

FIXTURES = Path(__file__).parent / "fixtures/ytvis_metric"
CASES = ["small_handcheck", "realistic_medium"]
EPS = np.spacing(1)  # the official precision is tp / (tp + fp + eps)


# ------------------------------------------------------------------------------------------ case building


def run_lengths(mask: np.ndarray) -> list[int]:
    """Uncompressed RLE counts of a 2-D mask: column-major runs, the first one background (may be 0)."""
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def rle(mask: np.ndarray, compressed: bool = True) -> dict | None:
    """A frame's segmentation as the files hold it: compressed (str counts) or uncompressed RLE; None if empty."""
    if not mask.any():
        return None
    if not compressed:
        return {"size": list(mask.shape), "counts": run_lengths(mask)}
    encoded = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(mask.shape), "counts": encoded["counts"].decode()}


def box_masks(shape: tuple[int, int, int], boxes: list) -> np.ndarray:
    """(T, H, W) masks with one box (y0, x0, h, w) per frame, or None for an empty frame."""
    masks = np.zeros(shape, dtype=bool)
    for t, box in enumerate(boxes):
        if box is not None:
            y0, x0, h, w = box
            masks[t, y0 : y0 + h, x0 : x0 + w] = True
    return masks


def make_case(videos: dict, gts: list[dict], dets: list[dict], categories=(1, 2, 3), gt_compressed=False):
    """Ground truth and results JSON from numpy masks. gts: {video, category, masks, iscrowd, id};
    dets: {video, category, score, masks, compressed}."""
    gt = {
        "videos": [{"id": v, "height": s[1], "width": s[2], "length": s[0]} for v, s in videos.items()],
        "categories": [{"id": c, "name": f"c{c}"} for c in categories],
        "annotations": [
            {
                "id": g.get("id", i + 1),
                "video_id": g["video"],
                "category_id": g["category"],
                "iscrowd": int(g.get("iscrowd", 0)),
                "segmentations": [rle(m, gt_compressed) for m in g["masks"]],
                "areas": [int(m.sum()) or None for m in g["masks"]],
            }
            for i, g in enumerate(gts)
        ],
    }
    results = [
        {
            "video_id": d["video"],
            "category_id": d["category"],
            "score": d["score"],
            "segmentations": [rle(m, d.get("compressed", True)) for m in d["masks"]],
        }
        for d in dets
    ]
    return gt, results


# ---------------------------------------------------------------------------------------- slow reference


def reference_evaluate(videos: dict, gts: list[dict], dets: list[dict], categories) -> dict[str, float]:
    """The protocol written the obvious way on numpy masks, loops everywhere: the 12 numbers."""
    iou_thresholds = np.linspace(0.5, 0.95, 10)
    recall_thresholds = np.linspace(0.0, 1.0, 101)
    area_ranges = {"all": (0, 1e10), "small": (0, 128**2), "medium": (128**2, 256**2), "large": (256**2, 1e10)}

    def avg_area(masks):
        areas = [m.sum() for m in masks if m.sum() > 0]
        return sum(areas) / len(areas) if areas else 0

    def iou(a, b):
        union = np.logical_or(a, b).sum()
        return np.logical_and(a, b).sum() / union if union else 0.0

    # outcomes[(category, area, video)] = (scores, matched[t][d], ignored[t][d], number of non-ignored GT)
    outcomes = {}
    for video in sorted(videos):
        for category in categories:
            vgts = [(i, g) for i, g in enumerate(gts) if g["video"] == video and g["category"] == category]
            vdets = [d for d in dets if d["video"] == video and d["category"] == category]
            vdets = sorted(vdets, key=lambda d: -d["score"])[:100]
            if not vgts and not vdets:
                continue
            for area, (lo, hi) in area_ranges.items():
                g_ignored = [bool(g.get("iscrowd")) or not lo <= avg_area(g["masks"]) <= hi for _, g in vgts]
                matched = [[False] * len(vdets) for _ in iou_thresholds]
                ignored = [[False] * len(vdets) for _ in iou_thresholds]
                for t, threshold in enumerate(iou_thresholds):
                    taken = set()
                    for d, det in enumerate(vdets):
                        ious = [iou(det["masks"], g["masks"]) for _, g in vgts]
                        free = [
                            j
                            for j, (_, g) in enumerate(vgts)
                            if (j not in taken or g.get("iscrowd")) and ious[j] >= min(threshold, 1 - 1e-10)
                        ]
                        pool = [j for j in free if not g_ignored[j]] or free
                        if pool:
                            best = max(pool, key=lambda j: (ious[j], j))
                            taken.add(best)
                            index, g = vgts[best]
                            matched[t][d] = g.get("id", index + 1) != 0
                            ignored[t][d] = g_ignored[best]
                        if not matched[t][d] and not lo <= avg_area(det["masks"]) <= hi:
                            ignored[t][d] = True
                positives = sum(not ig for ig in g_ignored)
                outcomes[category, area, video] = ([d["score"] for d in vdets], matched, ignored, positives)

    def cell(category, area, max_det):
        """Precision (T, R) and recall (T,) of one category, area range and max detections; None if undefined."""
        per_video = [outcomes[category, area, v] for v in sorted(videos) if (category, area, v) in outcomes]
        positives = sum(o[3] for o in per_video)
        if positives == 0:
            return None
        precision, recall = np.zeros((10, 101)), np.zeros(10)
        for t in range(10):
            entries = [(s[d], m[t][d], ig[t][d]) for s, m, ig, _ in per_video for d in range(min(len(s), max_det))]
            entries = sorted(entries, key=lambda e: -e[0])
            tp = fp = 0
            points = []
            for _, is_match, is_ignored in entries:
                if not is_ignored:
                    tp, fp = tp + is_match, fp + (not is_match)
                    points.append((tp / positives, tp / (tp + fp + EPS)))
            recall[t] = tp / positives
            for r, threshold in enumerate(recall_thresholds):
                precision[t, r] = max([p for rc, p in points if rc >= threshold], default=0.0)
        return precision, recall

    stats = {}
    for name in STAT_NAMES:
        kind, rest = name[:2], name[2:]
        area = {"s": "small", "m": "medium", "l": "large"}.get(rest, "all")
        max_det = int(rest) if kind == "AR" and rest.isdigit() else 100
        threshold = {"50": 0, "75": 5}.get(rest) if kind == "AP" else None
        values = []
        for category in categories:
            result = cell(category, area, max_det)
            if result is not None:
                chosen = result[0] if kind == "AP" else result[1]
                values.extend(np.ravel(chosen if threshold is None else chosen[threshold]))
        stats[name] = float(np.mean(values)) if values else -1.0
    return stats


def random_case(seed: int):
    """Random videos of boxes: moving, absent in some frames, crowd now and then, noisy and false detections,
    tied scores; one frame size large enough for medium and large tracks. GT ids start at 0 for odd seeds."""
    rng = np.random.default_rng(seed)
    videos = {3: (3, 30, 40), 1: (4, 24, 32), 7: (2, 420, 400)}
    gts, dets = [], []
    for video, (length, height, width) in videos.items():
        for _ in range(rng.integers(1, 4)):
            h, w = (
                rng.integers(max(4, height // 6), height * 9 // 10),
                rng.integers(max(4, width // 6), width * 9 // 10),
            )
            y, x = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
            boxes = [None if rng.random() < 0.2 else (y, x, h, w) for _ in range(length)]
            masks = box_masks((length, height, width), boxes)
            category = int(rng.integers(1, 4))
            gts.append({"video": video, "category": category, "masks": masks, "iscrowd": rng.random() < 0.15})
            for _ in range(rng.integers(1, 4)):
                dy, dx = rng.integers(-2, 3, size=2)
                noisy = [
                    None if b is None or rng.random() < 0.1 else (max(y + dy, 0), max(x + dx, 0), h, w) for b in boxes
                ]
                dets.append(
                    {
                        "video": video,
                        "category": category if rng.random() < 0.85 else int(rng.integers(1, 4)),
                        "score": float(rng.choice([0.3, 0.5, 0.7, 0.9]))
                        if rng.random() < 0.5
                        else float(rng.random()),
                        "masks": box_masks((length, height, width), noisy),
                        "compressed": rng.random() < 0.7,
                    }
                )
        for _ in range(rng.integers(0, 3)):
            h, w = rng.integers(2, height // 2), rng.integers(2, width // 2)
            boxes = [(rng.integers(0, height - h), rng.integers(0, width - w), h, w) for _ in range(length)]
            dets.append(
                {
                    "video": video,
                    "category": int(rng.integers(1, 4)),
                    "score": float(rng.choice([0.3, 0.5])),
                    "masks": box_masks((length, height, width), boxes),
                }
            )
    for i, g in enumerate(gts):
        g["id"] = i + seed % 2
    return videos, gts, dets


# -------------------------------------------------------------------------------------------- fixtures


def load_fixture(case: str):
    folder = FIXTURES / case
    read = lambda name: json.loads((folder / name).read_text())  # noqa: E731
    return read("gt.json"), read("results.json"), read("expected.json")


@pytest.mark.parametrize("case", CASES)
def test_fixture_numbers_match_official(case):
    gt, results, expected = load_fixture(case)
    result = evaluate_ytvis(gt, results)
    assert list(result.stats) == list(expected["stats_names"])
    np.testing.assert_allclose([result.stats[n] for n in STAT_NAMES], expected["stats"], rtol=0, atol=1e-9)
    for category in expected["per_category"]:
        mine = result.category_stats[category["category_id"]]
        for key in ("AP", "AP50", "AP75", "AR100"):
            assert mine[key] == pytest.approx(category[key], abs=1e-9), (category["category_id"], key)
        assert result.per_category[category["category_id"]] == pytest.approx(category["AP"], abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_fixture_pairwise_ious_match_official(case):
    gt, results, expected = load_fixture(case)
    ground_truth = parse_ground_truth(gt)
    detections = parse_results(results, ground_truth)
    gt_by_id = {track.ann_id: track for track in ground_truth.tracks}
    for pair in expected["pairwise_ious"]:
        ious = track_ious([detections[i] for i in pair["dt_result_index"]], [gt_by_id[i] for i in pair["gt_ann_id"]])
        np.testing.assert_allclose(ious, pair["iou"], rtol=0, atol=1e-12)


def test_fixture_inputs_are_not_modified():
    gt, results, _ = load_fixture("small_handcheck")
    before = json.dumps([gt, results])
    evaluate_ytvis(gt, results)
    assert json.dumps([gt, results]) == before


# ------------------------------------------------------------------------------- agreement with reference


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_slow_reference_on_random_cases(seed):
    videos, gts, dets = random_case(seed)
    gt, results = make_case(videos, gts, dets, gt_compressed=seed % 3 == 0)
    expected = reference_evaluate(videos, gts, dets, categories=(1, 2, 3))
    stats = evaluate_ytvis(gt, results).stats
    for name in STAT_NAMES:
        assert stats[name] == pytest.approx(expected[name], abs=1e-12), name


def test_agrees_with_reference_beyond_100_detections_with_tied_scores():
    rng = np.random.default_rng(5)
    videos = {1: (2, 20, 20), 2: (2, 20, 20)}
    gts = [{"video": v, "category": 1, "masks": box_masks((2, 20, 20), [(2, 2, 8, 8)] * 2)} for v in videos]
    dets = [
        {
            "video": int(rng.integers(1, 3)),
            "category": 1,
            "score": float(rng.choice([0.2, 0.4, 0.6])),
            "masks": box_masks((2, 20, 20), [(int(rng.integers(0, 6)), int(rng.integers(0, 6)), 8, 8)] * 2),
        }
        for _ in range(230)
    ]
    gt, results = make_case(videos, gts, dets, categories=(1,))
    expected = reference_evaluate(videos, gts, dets, categories=(1,))
    stats = evaluate_ytvis(gt, results).stats
    assert stats == pytest.approx(expected, abs=1e-12)


# ------------------------------------------------------------------------------------ protocol edge cases

SQUARE = (2, 2, 10, 10)  # a 100-pixel box
FAR = (20, 20, 10, 10)  # another 100-pixel box that does not touch SQUARE


def test_crowd_ground_truth_makes_matching_detections_ignored():
    """Two high-scoring detections on a crowd region are neither TP nor FP; without crowd they would be FPs."""
    shape = (2, 40, 40)
    videos = {1: shape}
    gts = [
        {"video": 1, "category": 1, "masks": box_masks(shape, [SQUARE] * 2)},
        {"video": 1, "category": 1, "masks": box_masks(shape, [FAR] * 2), "iscrowd": 1},
    ]
    dets = [
        {"video": 1, "category": 1, "score": 0.99, "masks": box_masks(shape, [FAR] * 2)},
        {"video": 1, "category": 1, "score": 0.98, "masks": box_masks(shape, [FAR] * 2)},
        {"video": 1, "category": 1, "score": 0.5, "masks": box_masks(shape, [SQUARE] * 2)},
    ]
    stats = evaluate_ytvis(*make_case(videos, gts, dets)).stats
    assert stats["AP"] == pytest.approx(1.0, abs=1e-9)
    assert stats["AR100"] == 1.0
    # AR1 keeps only the top detection of the (video, category): it lies on the crowd region, so recall is 0.
    assert stats["AR1"] == 0.0

    gts[1]["iscrowd"] = 0  # now a real object: the two detections on it are a TP and an FP, ranked above SQUARE
    stats = evaluate_ytvis(*make_case(videos, gts, dets)).stats
    # ranks: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> interpolated 1 up to 0.5, 2/3 above
    assert stats["AP"] == pytest.approx((51 * 1 + 50 * 2 / 3) / 101, abs=1e-9)


def test_area_ranges_select_ground_truth_and_unmatched_detections():
    """A small and a medium track found perfectly, plus a medium false positive ranked first."""
    shape = (1, 300, 300)
    small, medium, medium_fp = (0, 0, 10, 10), (40, 40, 140, 140), (185, 0, 100, 200)  # 100, 19600, 20000 px
    gts = [{"video": 1, "category": 1, "masks": box_masks(shape, [box])} for box in (small, medium)]
    dets = [
        {"video": 1, "category": 1, "score": score, "masks": box_masks(shape, [box])}
        for score, box in ((0.9, small), (0.8, medium), (0.95, medium_fp))
    ]
    stats = evaluate_ytvis(*make_case({1: shape}, gts, dets)).stats
    # all: FP, TP, TP -> precision 0, 1/2, 2/3 at recall 0, 1/2, 1 -> interpolated 2/3 everywhere
    assert stats["AP"] == pytest.approx(2 / 3, abs=1e-9)
    # small: the medium GT and the detection matched to it are ignored, the unmatched medium FP too
    assert stats["APs"] == pytest.approx(1.0, abs=1e-9)
    # medium: the small GT and its detection are ignored; the medium FP counts -> FP, TP -> 1/2
    assert stats["APm"] == pytest.approx(0.5, abs=1e-9)
    assert stats["APl"] == -1 and stats["ARl"] == -1
    # AR1 keeps the top detection of the (video, category) only: the false positive
    assert (stats["AR1"], stats["AR10"], stats["ARs"], stats["ARm"]) == (0.0, 1.0, 1.0, 1.0)


def test_area_range_bounds_are_inclusive():
    """A track of exactly 128**2 pixels is both small and medium."""
    shape = (1, 130, 130)
    masks = box_masks(shape, [(0, 0, 128, 128)])
    gt, results = make_case(
        {1: shape},
        [{"video": 1, "category": 1, "masks": masks}],
        [{"video": 1, "category": 1, "score": 0.5, "masks": masks}],
    )
    stats = evaluate_ytvis(gt, results).stats
    assert stats["APs"] == pytest.approx(1.0, abs=1e-9) and stats["APm"] == pytest.approx(1.0, abs=1e-9)
    assert stats["APl"] == -1


def test_an_iou_tie_goes_to_the_later_ground_truth():
    """d1 overlaps GT A and GT B equally (9/11); taking B (the later one) leaves A for d2 (IoU 2/3, 3/7 with B)."""
    shape = (1, 20, 20)
    band = lambda x0: box_masks(shape, [(0, x0, 10, 10)])  # noqa: E731 - rows 0..9, columns x0..x0+9
    gts = [{"video": 1, "category": 1, "masks": band(4)}, {"video": 1, "category": 1, "masks": band(6)}]
    dets = [
        {"video": 1, "category": 1, "score": 0.9, "masks": band(5)},
        {"video": 1, "category": 1, "score": 0.8, "masks": band(2)},
    ]
    stats = evaluate_ytvis(*make_case({1: shape}, gts, dets)).stats
    # thresholds .5-.65: two TPs (AP 1); .7-.8: d1 TP, d2 FP (precision 1 up to recall .5); .85-.95: nothing
    assert stats["AP"] == pytest.approx((4 * 1 + 3 * 51 / 101) / 10, abs=1e-9)
    assert stats["AP50"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(("false_positives", "expected_ap"), [(99, 1 / 100), (100, 0.0)])
def test_only_the_100_best_detections_per_video_and_category_count(false_positives, expected_ap):
    """The true positive ranks after `false_positives` better-scored misses: in the top 100 or cut off."""
    shape = (1, 40, 40)
    gts = [{"video": 1, "category": 1, "masks": box_masks(shape, [SQUARE])}]
    misses = [{"video": 1, "category": 1, "score": 0.9, "masks": box_masks(shape, [FAR])}] * false_positives
    others = [{"video": 1, "category": 2, "score": 0.95, "masks": box_masks(shape, [SQUARE])}] * 50  # other category
    hit = {"video": 1, "category": 1, "score": 0.1, "masks": box_masks(shape, [SQUARE])}
    stats = evaluate_ytvis(*make_case({1: shape}, gts, misses + others + [hit])).stats
    # precision at recall 1 is 1 / (false_positives + 1) (up to eps) when the hit is kept, else nothing is found
    assert stats["AP"] == pytest.approx(expected_ap, abs=1e-9)
    assert stats["AR100"] == (1.0 if false_positives < 100 else 0.0)


def test_absent_frames_add_the_other_sides_area_to_the_union():
    shape = (3, 40, 40)
    gt_masks = box_masks(shape, [SQUARE, SQUARE, None])
    det_masks = box_masks(shape, [SQUARE, None, SQUARE])  # I = 100; U = 100 + 100 (GT only) + 100 (det only)
    gt, results = make_case({1: shape}, [{"video": 1, "category": 1, "masks": gt_masks}], [])
    results = [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [rle(m) for m in det_masks]}]
    ground_truth = parse_ground_truth(gt)
    assert track_ious(parse_results(results, ground_truth), ground_truth.tracks)[0, 0] == pytest.approx(1 / 3)
    assert evaluate_ytvis(gt, results).stats["AP50"] == 0.0

    results[0]["segmentations"][2] = None  # now I = 100, U = 200: exactly 0.5, a match at the 0.5 threshold only
    stats = evaluate_ytvis(gt, results).stats
    assert (stats["AP50"], stats["AP75"]) == (pytest.approx(1.0, abs=1e-9), 0.0)
    assert stats["AP"] == pytest.approx(0.1, abs=1e-9)


def test_an_empty_mask_counts_like_an_absent_frame():
    shape = (2, 40, 40)
    gt, results = make_case({1: shape}, [{"video": 1, "category": 1, "masks": box_masks(shape, [SQUARE, SQUARE])}], [])
    empty = {"size": [40, 40], "counts": [1600]}
    with_null = [
        {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [rle(box_masks(shape, [SQUARE])[0]), None]}
    ]
    with_empty = [{**with_null[0], "segmentations": [with_null[0]["segmentations"][0], empty]}]
    assert evaluate_ytvis(gt, with_null).stats == evaluate_ytvis(gt, with_empty).stats


def test_empty_results_give_no_detection_numbers_with_a_warning():
    shape = (1, 40, 40)
    gts = [{"video": 1, "category": 2, "masks": box_masks(shape, [SQUARE])}]  # categories 1 and 3 have no GT
    gt, _ = make_case({1: shape}, gts, [])
    with pytest.warns(UserWarning, match="empty result list"):
        result = evaluate_ytvis(gt, [])
    small_and_all = ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs")
    assert all(result.stats[name] == 0.0 for name in small_and_all)
    assert all(result.stats[name] == -1.0 for name in ("APm", "APl", "ARm", "ARl"))
    assert result.per_category == {1: -1.0, 2: 0.0, 3: -1.0}


def test_uncompressed_rle_in_results_gives_the_same_numbers():
    videos, gts, dets = random_case(3)
    compressed = evaluate_ytvis(*make_case(videos, gts, [{**d, "compressed": True} for d in dets]))
    uncompressed = evaluate_ytvis(*make_case(videos, gts, [{**d, "compressed": False} for d in dets]))
    assert compressed.stats == uncompressed.stats
    assert compressed.per_category == uncompressed.per_category


def test_ground_truth_with_id_0_counts_as_unmatched_like_the_official_code():
    """The official code stores the matched GT id and reads 0 as "no match": a perfect hit on it is an FP."""
    shape = (1, 40, 40)
    gts = [{"video": 1, "category": 1, "masks": box_masks(shape, [SQUARE]), "id": 0}]
    dets = [{"video": 1, "category": 1, "score": 0.5, "masks": box_masks(shape, [SQUARE])}]
    stats = evaluate_ytvis(*make_case({1: shape}, gts, dets)).stats
    assert (stats["AP"], stats["AR100"]) == (0.0, 0.0)


def test_polygon_ground_truth_is_rasterised_like_pycocotools():
    shape = (1, 40, 40)
    polygon = [[5.0, 5.0, 30.0, 5.0, 30.0, 25.0, 5.0, 25.0]]
    gt, _ = make_case({1: shape}, [{"video": 1, "category": 1, "masks": box_masks(shape, [SQUARE])}], [])
    gt["annotations"][0]["segmentations"] = [polygon]
    raster = mask_utils.merge(mask_utils.frPyObjects(polygon, 40, 40))
    gt["annotations"][0]["areas"] = [int(mask_utils.area(raster))]
    results = [
        {
            "video_id": 1,
            "category_id": 1,
            "score": 1.0,
            "segmentations": [{"size": [40, 40], "counts": raster["counts"].decode()}],
        }
    ]
    assert evaluate_ytvis(gt, results).stats["AP"] == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------------- evaluate module and CLI


def test_evaluate_module_loaded_from_local_folder_matches_python_api():
    import evaluate

    videos, gts, dets = random_case(5)
    gt, results = make_case(videos, gts, dets)
    predictions, references = split_by_video(gt, results)
    expected = evaluate_ytvis(gt, results).to_dict()

    metric = evaluate.load(str(METRIC_DIR))
    metric.add_batch(predictions=predictions[:1], references=references[:1])
    metric.add_batch(predictions=predictions[1:], references=references[1:])
    computed = metric.compute(categories=gt["categories"])
    assert computed.pop("per_category") == pytest.approx(expected.pop("per_category"), abs=1e-12)
    assert computed == pytest.approx(expected, abs=1e-12)

    metric = load_ytvis_metric()
    for prediction, reference in zip(predictions, references, strict=True):
        metric.add(prediction=prediction, reference=reference)
    computed = metric.compute()
    assert {k: computed[k] for k in STAT_NAMES} == pytest.approx(expected, abs=1e-12)


def write_case(tmp_path: Path, gt: dict, results: list) -> tuple[Path, Path]:
    gt_path, results_path = tmp_path / "gt.json", tmp_path / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, results_path


def test_cli_prints_table_and_writes_json(tmp_path, capsys):
    videos, gts, dets = random_case(2)
    gt, results = make_case(videos, gts, dets)
    gt_path, results_path = write_case(tmp_path, gt, results)
    out = tmp_path / "out.json"
    argv = ["evaluate", "--gt", str(gt_path), "--results", str(results_path), "--per-category", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    expected = evaluate_ytvis(gt, results)
    assert all(name in printed for name in STAT_NAMES) and "c2" in printed
    written = json.loads(out.read_text())
    assert list(written) == [*STAT_NAMES, "per_category"]
    assert {k: written[k] for k in STAT_NAMES} == expected.stats
    assert written["per_category"] == {str(k): v for k, v in expected.per_category.items()}


def test_cli_reports_bad_input_naming_the_record(tmp_path, capsys):
    gt, results = make_case({1: (1, 40, 40)}, [], [])
    results = [{"video_id": 42, "category_id": 1, "score": 0.5, "segmentations": [None]}]
    gt_path, results_path = write_case(tmp_path, gt, results)
    assert main(["evaluate", "--gt", str(gt_path), "--results", str(results_path)]) == EXIT_BAD_INPUT
    assert "results[0]" in capsys.readouterr().err


def test_cli_reads_a_submission_zip(tmp_path, capsys):
    from modeling_m2f_video.ytvis.records import write_submission_zip

    videos, gts, dets = random_case(4)
    gt, results = make_case(videos, gts, dets)
    gt_path, _ = write_case(tmp_path, gt, results)
    zip_path = write_submission_zip(results, tmp_path / "submission.zip")
    out = tmp_path / "out.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["evaluate", "--gt", str(gt_path), "--results", str(zip_path), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["AP"] == evaluate_ytvis(gt, results).stats["AP"]


# ------------------------------------------------------------------------------------------- benchmark


def test_benchmark_case_is_deterministic_and_the_benchmark_runs_without_the_official_code(tmp_path, capsys):
    from conftest import load_benchmark_script

    make_metric_case = load_benchmark_script("make_metric_case")
    bench = load_benchmark_script("bench_metric_official")
    size = ["--videos", "2", "--frames", "3", "--height", "36", "--width", "64"]
    for folder in ("a", "b"):
        make_metric_case.main([str(tmp_path / folder), *size])
    for name in ("gt.json", "results.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert len(results) == 2 * 20 and all(len(r["segmentations"]) == 3 for r in results)
    report = bench.main([str(tmp_path / "a"), "--repeats", "1"])
    assert report["ours"]["seconds"] > 0 and report["ours"]["peak_rss_gb"] > 0 and "official" not in report
    assert "official: not measured" in capsys.readouterr().out
