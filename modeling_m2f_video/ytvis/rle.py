"""pycocotools compressed RLE, the mask format of YouTube-VIS files: encoding, decoding, areas and checks.

Every other module that writes or reads a mask of a YouTube-VIS file goes through these functions, so that one
rule decides what a mask looks like in JSON: a `{"size": [height, width], "counts": str}` object, and `None`
(JSON null) for a frame where the object is absent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils

# Compressed RLE strings (pycocotools' maskApi.c) store each number in 5-bit chunks, one per character
# ('0' + chunk), low bits first; bit 0x20 of a character means "more chunks follow" and bit 0x10 of the last
# chunk is the sign. From the fourth number on, each is stored as the difference to the run two before.
# pycocotools reads the chunks with 32-bit shifts, so only numbers of at most 6 chunks (30 bits with the
# sign) read back reliably; the run lengths of any real frame (under 2**29 pixels) fit.
_CHAR_OFFSET = 48
_MORE_BIT = 0x20
_SIGN_BIT = 0x10
_MAX_CHUNKS = 6


def decode_rle_strings(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many pycocotools compressed RLE strings at once, with numpy (no loop over characters).

    Returns `(runs, owner, well_formed)`: the run lengths of all strings concatenated, the index of the
    string each run belongs to, and per string whether it is well formed (characters '0'..'o' only, every
    number complete and at most 6 characters long, every run length non-negative).
    """
    n = len(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=n)
    codes = np.frombuffer(b"".join(strings), dtype=np.uint8).astype(np.int64) - _CHAR_OFFSET
    if codes.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.ones(n, bool)
    char_owner = np.repeat(np.arange(n), lengths)
    # A number ends at a character without the "more" bit; each string's last character ends one in any
    # case, so that a truncated string cannot run into the next one.
    ends = (codes & _MORE_BIT) == 0
    string_last_char = np.cumsum(lengths)[lengths > 0] - 1
    truncated = ~ends[string_last_char]
    ends[string_last_char] = True

    end_positions = np.flatnonzero(ends)
    starts = np.concatenate(([0], end_positions[:-1] + 1))
    chunk_index = np.arange(codes.size) - starts[np.cumsum(ends) - ends]
    chunks = (codes & 0x1F) << (5 * np.minimum(chunk_index, _MAX_CHUNKS - 1))
    numbers = np.add.reduceat(chunks, starts)
    negative = (codes[end_positions] & _SIGN_BIT) != 0
    numbers -= negative * (np.int64(1) << (5 * (np.minimum(chunk_index[end_positions], _MAX_CHUNKS - 1) + 1)))

    owner = char_owner[end_positions]
    runs = _undo_differences(numbers, owner, n)
    bad_chars = (codes < 0) | (codes > 63) | (chunk_index >= _MAX_CHUNKS)
    malformed = np.bincount(char_owner[bad_chars], minlength=n) > 0
    malformed[np.flatnonzero(lengths > 0)[truncated]] = True
    malformed |= np.bincount(owner[runs < 0], minlength=n) > 0
    return runs, owner, ~malformed


def inner_zero_runs(runs: np.ndarray, owner: np.ndarray, n_strings: int) -> np.ndarray:
    """Per string of a `decode_rle_strings` result: whether any run after the first has length zero.

    Only the first (background) run of a mask may be empty when pycocotools' `encode` writes it, but its decoder
    accepts empty runs anywhere, and such an RLE decodes to the same mask as the one with the empty run merged
    away. They matter to the metric: pycocotools' `merge` and `iou` walk two masks' runs together and stop early
    where both masks have an empty run at the same pixel, so these are the masks whose overlap the metric must
    take from `merge`, as the official code does (see `evaluation.metric.track_ious`).
    """
    first = np.ones(owner.size, dtype=bool)
    first[1:] = owner[1:] != owner[:-1]
    return np.bincount(owner[(runs == 0) & ~first], minlength=n_strings) > 0


def _undo_differences(numbers: np.ndarray, owner: np.ndarray, n_strings: int) -> np.ndarray:
    """Turn stored numbers into run lengths: run[m] = number[m] + run[m-2] from the fourth run (m = 3) on.

    So the odd runs are running sums of the odd-position numbers, and the even runs from m = 2 on are
    running sums of the even-position numbers from m = 2 on; the sums restart at each string.
    """
    first_of_string = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=n_strings))[:-1]))
    position = np.arange(numbers.size) - first_of_string[owner]
    runs = numbers.copy()
    for chain in (position % 2 == 1, (position % 2 == 0) & (position >= 2)):
        sums = np.cumsum(np.where(chain, numbers, 0))
        before_string = np.concatenate(([0], sums))[first_of_string]
        runs = np.where(chain, sums - before_string[owner], runs)
    return runs


def encode_rles(masks: np.ndarray) -> list[dict]:
    """(N, H, W) bool masks as N JSON-ready compressed RLEs, with one pycocotools call."""
    if len(masks) == 0:
        return []
    frames = np.asfortranarray(np.asarray(masks, dtype=np.uint8).transpose(1, 2, 0))  # (H, W, N)
    return [rle_to_json(rle) for rle in mask_utils.encode(frames)]


def encode_rle(mask: np.ndarray) -> dict:
    """A (H, W) bool mask as a JSON-ready compressed RLE (`counts` a str)."""
    return encode_rles(np.asarray(mask)[None])[0]


def encode_track(masks: np.ndarray) -> list[dict | None]:
    """(T, H, W) bool masks of one track as its per-frame `segmentations`: an RLE per frame, None where empty."""
    masks = np.asarray(masks, dtype=bool)
    present = masks.reshape(len(masks), -1).any(axis=1)
    return [rle if present[t] else None for t, rle in enumerate(encode_rles(masks))]


def decode_rle(rle: dict) -> np.ndarray:
    """The (H, W) bool mask of a compressed RLE (`counts` a str or bytes)."""
    return mask_utils.decode({"size": list(rle["size"]), "counts": rle["counts"]}).astype(bool)


def rle_to_json(rle: dict) -> dict:
    """A compressed RLE with plain-int size and str counts, as JSON wants it."""
    counts = rle["counts"]
    return {
        "size": [int(s) for s in rle["size"]],
        "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts,
    }


# pycocotools' `area` fails on lists of more than 255 RLEs with numpy 2 (it sizes an index as uint8).
_AREA_BATCH = 255


def rle_areas(rles: list[dict | None]) -> np.ndarray:
    """Pixel count of each frame's mask (0 where absent), with one pycocotools call per 255 frames of the track."""
    areas = np.zeros(len(rles), dtype=np.int64)
    present = [t for t, rle in enumerate(rles) if rle is not None]
    for start in range(0, len(present), _AREA_BATCH):
        frames = present[start : start + _AREA_BATCH]
        areas[frames] = mask_utils.area([rles[t] for t in frames])
    return areas
