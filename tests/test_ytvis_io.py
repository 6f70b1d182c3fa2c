"""YouTube-VIS input checking (every bad input names its record), the RLE string decoder, and the writers."""

import json
import zipfile

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from modeling_m2f_video.errors import UserInputError
from modeling_m2f_video.evaluation.metric import evaluate_ytvis
from modeling_m2f_video.ytvis import rle
from modeling_m2f_video.ytvis.reader import parse_ground_truth, parse_results
from modeling_m2f_video.ytvis.records import predictions_to_records, write_submission_zip
from modeling_m2f_video.ytvis.rle import decode_rle_strings, inner_zero_runs

H, W, T = 8, 10, 2


def encode(mask: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


def square() -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[2:5, 3:7] = True
    return mask


def valid_case() -> tuple[dict, list]:
    """One video of T frames (H x W), one GT track, one result: both the same square in every frame."""
    segm = {"size": [H, W], "counts": encode(square())}
    gt = {
        "videos": [{"id": 1, "height": H, "width": W, "length": T}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [segm] * T, "areas": [12] * T}
        ],
    }
    return gt, [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [segm] * T}]


def test_valid_case_is_a_perfect_score():
    assert evaluate_ytvis(*valid_case()).stats["AP"] == pytest.approx(1.0, abs=1e-9)


# --------------------------------------------------------------------------------------------- bad input

RESULT_ERRORS = {
    "unknown video id": (lambda r: r.update(video_id=99), "unknown video id 99"),
    "unknown category": (lambda r: r.update(category_id=7), "category id 7 not in the ground truth"),
    "missing score": (lambda r: r.pop("score"), "'score'"),
    "nan score": (lambda r: r.update(score=float("nan")), "'score'"),
    "too few frames": (lambda r: r["segmentations"].pop(), "list of 2 entries"),
    "too many frames": (lambda r: r["segmentations"].append(None), "list of 2 entries"),
    "polygon in results": (lambda r: r["segmentations"].__setitem__(0, [[1, 1, 5, 1, 5, 5]]), "RLE object or null"),
    "4-number polygon in results": (lambda r: r["segmentations"].__setitem__(0, [[1, 2, 3, 4]]), "RLE object or null"),
    "size disagrees": (lambda r: r["segmentations"].__setitem__(0, {"size": [W, H], "counts": "0"}), "size"),
    "missing counts": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W]}), "counts"),
    "runs too short": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": [5, 3]}), "sum to 80"),
    "negative run": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": [90, -10]}), "sum to 80"),
    "float runs": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": [40.0, 40.0]}), "integers"),
    "bad character": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": "5~2"}), "invalid"),
    "truncated string": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": "P1"}), "invalid"),
    "wrong total string": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": "52"}), "invalid"),
    "non-ascii string": (lambda r: r["segmentations"].__setitem__(0, {"size": [H, W], "counts": "5é"}), "ASCII"),
}


@pytest.mark.parametrize("name", RESULT_ERRORS)
def test_bad_result_raises_naming_the_record(name):
    gt, results = valid_case()
    results.insert(0, json.loads(json.dumps(results[0])))  # a good record first: the bad one is results[1]
    spoil, message = RESULT_ERRORS[name]
    spoil(results[1])
    with pytest.raises(UserInputError, match=r"results\[1\]") as error:
        evaluate_ytvis(gt, results)
    assert message in str(error.value)


GT_ERRORS = {
    "unknown video": (lambda g: g["annotations"][0].update(video_id=5), "unknown video id 5"),
    "unknown category": (lambda g: g["annotations"][0].update(category_id=9), "unknown category id 9"),
    "frame count": (lambda g: g["annotations"][0]["segmentations"].pop(), "list of 2 entries"),
    "areas count": (lambda g: g["annotations"][0]["areas"].pop(), "'areas' needs 2"),
    "height disagrees": (lambda g: g["annotations"][0].update(height=H + 1), "'height'"),
    "rle size": (
        lambda g: g["annotations"][0]["segmentations"].__setitem__(1, {"size": [1, 1], "counts": [1]}),
        "size",
    ),
    "odd polygon": (lambda g: g["annotations"][0]["segmentations"].__setitem__(1, [[1, 2, 3, 4, 5]]), "polygons"),
    **{
        # pycocotools reads a leading 4-number list as a box (and fails on it), a later one as a 2-point polygon
        f"{name} polygon": (lambda g, p=polygon: g["annotations"][0]["segmentations"].__setitem__(1, p), "polygons")
        for name, polygon in {
            "4-number": [[1, 2, 3, 4]],
            "4-number second": [[1, 1, 6, 1, 6, 6], [1, 2, 3, 4]],
            "4-number first": [[1, 2, 3, 4], [1, 1, 6, 1, 6, 6]],
            "2-number": [[1, 2]],
            "7-number": [[1, 1, 6, 1, 6, 6, 3]],
            "empty": [[]],
            "flat": [1, 1, 6, 1, 6, 6],
            "string coordinate": [[1, 1, 6, 1, 6, "6"]],
            "bool coordinate": [[1, 1, 6, 1, 6, True]],
            "nan coordinate": [[1, 1, float("nan"), 1, 6, 6]],
            "infinite coordinate": [[1, 1, float("inf"), 1, 6, 6]],  # pycocotools loops forever
            "huge coordinate": [[1, 1, 1e12, 1, 6, 6]],  # pycocotools exhausts memory
        }.items()
    },
    "bad string": (
        lambda g: g["annotations"][0]["segmentations"].__setitem__(1, {"size": [H, W], "counts": "??"}),
        "invalid",
    ),
    "crowd flag": (lambda g: g["annotations"][0].update(iscrowd=2), "iscrowd"),
    "duplicate id": (lambda g: g["annotations"].append(json.loads(json.dumps(g["annotations"][0]))), "duplicate"),
}


@pytest.mark.parametrize("name", GT_ERRORS)
def test_bad_ground_truth_raises_naming_the_record(name):
    gt, results = valid_case()
    spoil, message = GT_ERRORS[name]
    spoil(gt)
    with pytest.raises(UserInputError, match=r"ground truth annotations\[\d\] \(id 1\)") as error:
        evaluate_ytvis(gt, results)
    assert message in str(error.value)


def test_polygons_of_three_points_and_beyond_the_frame_are_rasterised():
    gt, results = valid_case()
    triangle = [[-3.0, -3.0, 12.0, 2.0, 4.5, 11.0]]  # partly outside the 10 x 8 frame
    gt["annotations"][0]["segmentations"][1] = triangle
    raster = mask_utils.merge(mask_utils.frPyObjects(triangle, H, W))
    assert parse_ground_truth(gt).tracks[0].rles[1]["counts"] == raster["counts"]


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda g: g.pop("videos"), "needs a list under 'videos'"),
        (lambda g: g["videos"][0].update(height="8"), r"videos\[0\] \(id 1\): 'height'"),
        (lambda g: g["videos"].append(dict(g["videos"][0])), "duplicate video id"),
        (lambda g: g["categories"].append({"id": 1}), "duplicate category id 1"),
    ],
)
def test_bad_ground_truth_structure(spoil, message):
    gt, results = valid_case()
    spoil(gt)
    with pytest.raises(ValueError, match=message):
        evaluate_ytvis(gt, results)


def test_malformed_json_files_raise_value_error(tmp_path):
    gt, results = valid_case()
    good_gt, good_results, broken = tmp_path / "gt.json", tmp_path / "results.json", tmp_path / "broken.json"
    good_gt.write_text(json.dumps(gt))
    good_results.write_text(json.dumps(results))
    broken.write_text('{"videos": [')
    with pytest.raises(ValueError, match="ground truth file .*broken.json: malformed JSON"):
        evaluate_ytvis(broken, good_results)
    with pytest.raises(ValueError, match="results file .*broken.json: malformed JSON"):
        evaluate_ytvis(good_gt, broken)
    with pytest.raises(ValueError, match="results: must be a JSON list"):
        evaluate_ytvis(good_gt, {"not": "a list"})


# ------------------------------------------------------------------------------------------- RLE strings


def column_major_runs(mask: np.ndarray) -> list[int]:
    flat = mask.flatten(order="F").astype(np.int8)
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]))
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def test_decoder_recovers_run_lengths_of_pycocotools_strings():
    rng = np.random.default_rng(0)
    masks = [rng.random((rng.integers(1, 60), rng.integers(1, 60))) < p for p in rng.random(40)]
    masks += [np.zeros((300, 400), bool), np.ones((300, 400), bool)]  # long runs: multi-character numbers
    strings = [encode(m).encode() for m in masks]
    runs, owner, well_formed = decode_rle_strings(strings)
    assert well_formed.all()
    for i, mask in enumerate(masks):
        assert runs[owner == i].tolist() == column_major_runs(mask)


def test_decoder_flags_malformed_strings_without_spoiling_the_others():
    good = encode(square()).encode()
    too_long = b"P" * 6 + b"0"  # one number of 7 characters ('P' is a zero chunk with the "more" bit)
    strings = [good, b"5~2", good[:-1] + b"P", good, b"", too_long]
    runs, owner, well_formed = decode_rle_strings(strings)
    assert well_formed.tolist() == [True, False, False, True, True, False]
    assert runs[owner == 3].tolist() == column_major_runs(square())


def test_inner_zero_runs_flags_empty_runs_after_the_first():
    runs = [[0, 4, 76], [5, 0, 75], [0, 0, 80], [80, 0], [80], [0, 80]]
    strings = [mask_utils.frPyObjects({"size": [H, W], "counts": r}, H, W)["counts"] for r in runs]
    decoded, owner, well_formed = decode_rle_strings(strings)
    assert well_formed.all()
    assert [decoded[owner == k].tolist() for k in range(len(runs))] == runs  # the strings keep empty runs
    assert inner_zero_runs(decoded, owner, len(runs)).tolist() == [False, True, True, True, False, False]


def test_tracks_know_which_frames_have_empty_runs():
    """Compressed strings, uncompressed counts and polygon rasters alike (polygons never have them)."""
    gt, results = valid_case()
    with_empty = {"size": [H, W], "counts": [20, 4, 0, 0, 56]}
    gt["videos"][0]["length"] = 4
    gt["annotations"][0].update(
        segmentations=[with_empty, [[1, 1, 6, 1, 6, 6]], None, {"size": [H, W], "counts": [0, 4, 76]}], areas=[4] * 4
    )
    compressed = mask_utils.frPyObjects(with_empty, H, W)["counts"].decode()
    results[0]["segmentations"] = [
        {"size": [H, W], "counts": compressed},
        None,
        with_empty,
        results[0]["segmentations"][0],
    ]
    ground_truth = parse_ground_truth(gt)
    assert ground_truth.tracks[0].zero_runs.tolist() == [True, False, False, False]
    (result,) = parse_results(results, ground_truth)
    assert result.zero_runs.tolist() == [True, False, True, False]
    assert result.ann_id == 1  # results are numbered from 1 in file order, as the official code does


# ----------------------------------------------------------------------------------------------- writers


def test_predictions_to_records_round_trips_through_pycocotools():
    rng = np.random.default_rng(1)
    masks = torch.from_numpy(rng.random((3, 4, 12, 16)) < 0.3)
    masks[1, 2] = False  # an empty frame is written as None
    prediction = {"scores": torch.tensor([0.9, 0.25, 0.5]), "labels": torch.tensor([0, 2, 1]), "masks": masks}
    records = predictions_to_records(prediction, video_id=7, label_to_category={0: 11, 1: 12, 2: 13})
    assert [(r["video_id"], r["category_id"]) for r in records] == [(7, 11), (7, 13), (7, 12)]
    assert [r["score"] for r in records] == pytest.approx([0.9, 0.25, 0.5])  # float32 scores, as Python floats
    for k, record in enumerate(records):
        for t, segm in enumerate(record["segmentations"]):
            if k == 1 and t == 2:
                assert segm is None
                continue
            assert isinstance(segm["counts"], str) and segm["size"] == [12, 16]
            decoded = mask_utils.decode({"size": segm["size"], "counts": segm["counts"].encode()})
            np.testing.assert_array_equal(decoded.astype(bool), masks[k, t].numpy())
    json.dumps(records)  # plain JSON types only


def test_predictions_to_records_accepts_a_label_list_and_rejects_unknown_labels():
    prediction = {"scores": np.array([0.5]), "labels": np.array([1]), "masks": np.ones((1, 1, 2, 2), bool)}
    assert predictions_to_records(prediction, 1, [40, 41])[0]["category_id"] == 41
    with pytest.raises(ValueError, match="label 1 has no category id"):
        predictions_to_records(prediction, 1, {0: 40})


def test_written_records_evaluate_perfectly_against_the_masks_they_came_from():
    gt, _ = valid_case()
    masks = torch.from_numpy(np.stack([square()] * T))[None]
    prediction = {"scores": torch.tensor([0.7]), "labels": torch.tensor([0]), "masks": masks}
    records = predictions_to_records(prediction, video_id=1, label_to_category=[1])
    assert evaluate_ytvis(gt, records).stats["AP"] == pytest.approx(1.0, abs=1e-9)


def test_submission_zip_holds_results_json(tmp_path):
    _, results = valid_case()
    path = write_submission_zip(results, tmp_path / "submission.zip")
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["results.json"]
        assert json.loads(archive.read("results.json")) == results


def test_tracks_longer_than_255_frames_are_evaluated():
    """pycocotools' area() breaks on more than 255 RLEs at once: long tracks must still get their areas."""
    length = 300
    segm = {"size": [H, W], "counts": encode(square())}
    gt = {
        "videos": [{"id": 1, "height": H, "width": W, "length": length}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            {
                "id": 1,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [segm] * length,
                "areas": [12] * length,
            }
        ],
    }
    half = [segm] * (length // 2) + [None] * (length // 2)
    results = [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": half}]
    result = evaluate_ytvis(gt, results)
    # IoU 0.5 exactly: a true positive at the 0.5 threshold only.
    assert result.stats["AP50"] == pytest.approx(1.0, abs=1e-9)
    assert result.stats["AP75"] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------------------- whole-track RLEs


def random_frame(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray | None, object]:
    """A random frame's mask (None if absent) and its segmentation, in one of the forms a file may use: absent,
    empty, full, touching the first or the last pixel, uncompressed runs with empty runs, a compressed string."""
    kind = rng.integers(7)
    if kind == 0:
        return None, None
    mask = rng.random((height, width)) < rng.random()
    if kind == 1:
        mask[:] = rng.random() < 0.5  # empty or full
    mask.flat[0] |= kind == 2
    mask.flat[-1] |= kind == 3
    if kind == 4:  # uncompressed, with empty runs inserted (valid: they decode to the same mask)
        runs = column_major_runs(mask)
        runs = [0, 0, *runs[:1], 0, 0, *runs[1:], 0]
        return mask, {"size": [height, width], "counts": runs}
    return mask, {"size": [height, width], "counts": encode(mask)}


def test_whole_track_rles_are_the_frames_side_by_side_as_pycocotools_encodes_them():
    """Absent frames empty, empty runs merged away: the very string `encode` writes for the joined frames."""
    rng = np.random.default_rng(3)
    for height, width, length, tracks in [(5, 7, 6, 30), (300, 400, 3, 4)]:  # the second: long runs
        gt = {
            "videos": [{"id": 1, "height": height, "width": width, "length": length}],
            "categories": [{"id": 1, "name": "thing"}],
            "annotations": [],
        }
        frames = [[random_frame(rng, height, width) for _ in range(length)] for _ in range(tracks)]
        results = [
            {"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [segm for _, segm in track]}
            for track in frames
        ]
        parsed = parse_results(results, parse_ground_truth(gt))
        for track, masks in zip(parsed, frames, strict=True):
            side_by_side = np.concatenate([np.zeros((height, width), bool) if m is None else m for m, _ in masks], 1)
            assert track.whole["size"] == [height, width * length]
            assert track.whole["counts"] == encode(side_by_side).encode()
            areas = [0 if m is None else int(m.sum()) for m, _ in masks]
            assert track.areas.tolist() == areas
            for (mask, _), (start, end) in zip(masks, track.spans, strict=True):  # each mask lies in its span
                if mask is None:
                    assert (start, end) == (0, 0)
                elif mask.any():
                    pixels = np.flatnonzero(mask.flatten(order="F"))
                    assert start <= pixels[0] and pixels[-1] < end


def test_strings_are_checked_alike_in_chunks_of_any_size(monkeypatch):
    """A file is decoded a few tracks at a time: any chunk size gives the same tracks and names the same record."""
    rng = np.random.default_rng(4)
    gt, _ = valid_case()
    results = [
        {
            "video_id": 1,
            "category_id": 1,
            "score": 0.5,
            "segmentations": [random_frame(rng, H, W)[1] for _ in range(T)],
        }
        for _ in range(20)
    ]
    expected = parse_results(results, parse_ground_truth(gt))
    bad = json.loads(json.dumps(results))
    bad[13]["segmentations"][1] = {"size": [H, W], "counts": "52"}
    for chunk_chars in (1, 7, 100):
        monkeypatch.setattr(rle, "_CHUNK_CHARS", chunk_chars)
        for track, reference in zip(parse_results(results, parse_ground_truth(gt)), expected, strict=True):
            assert track.whole == reference.whole
            assert track.areas.tolist() == reference.areas.tolist()
            assert track.zero_runs.tolist() == reference.zero_runs.tolist()
        with pytest.raises(UserInputError, match=r"results\[13\] .*segmentations\[1\]: invalid compressed RLE"):
            parse_results(bad, parse_ground_truth(gt))
