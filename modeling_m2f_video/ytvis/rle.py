"""pycocotools compressed RLE, the mask format of YouTube-VIS files: encoding, decoding, areas and checks.

Every other module that writes or reads a mask of a YouTube-VIS file goes through these functions, so that one
rule decides what a mask looks like in JSON: a `{"size": [height, width], "counts": str}` object, and `None`
(JSON null) for a frame where the object is absent.

Files hold hundreds of thousands of compressed strings, so they are decoded with numpy, many at a time and
without a Python loop over characters or frames: `read_tracks` checks every string of a file, gives every mask's
area and turns each track into one RLE of all its frames (`TrackMasks.whole`), which the metric compares with
one pycocotools call per pair of tracks.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

# Compressed RLE strings (pycocotools' maskApi.c) store each number in 5-bit chunks, one per character
# ('0' + chunk), low bits first; bit 0x20 of a character means "more chunks follow" and bit 0x10 of the last
# chunk is the sign. From the fourth number on, each is stored as the difference to the run two before.
# pycocotools reads the chunks with 32-bit shifts, so only numbers of at most 6 chunks (30 bits with the
# sign) read back reliably; the run lengths of any real frame (under 2**29 pixels) fit.
_CHAR_OFFSET = 48
_MORE_BIT = 0x20
_MAX_CHUNKS = 6
# Hence the whole-track RLEs of `read_tracks`, whose runs can be as long as the track, are only made for tracks
# of at most this many pixels.
_MAX_WHOLE_PIXELS = 2**29 - 1
# Strings are decoded this many characters at a time, so that the working arrays (about 40 bytes per character)
# stay small whatever the size of the file.
_CHUNK_CHARS = 1 << 17


@dataclass
class _Decoded:
    """Run lengths of many compressed RLE strings, from `_decode`.

    String k's runs are `runs[first[k]:first[k + 1]]` (`first` has one entry more than there are strings);
    `well_formed[k]` says it has characters '0'..'o' only, every number complete and at most 6 characters long
    and every run length non-negative (its runs mean nothing otherwise).
    """

    runs: np.ndarray
    first: np.ndarray
    well_formed: np.ndarray
    zeros: np.ndarray  # the indexes of the empty runs in `runs`

    def owners(self) -> np.ndarray:
        """The index of the string each run belongs to."""
        return np.repeat(np.arange(self.first.size - 1), np.diff(self.first))

    def run_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Per string: the sum of all its runs (the pixels it covers) and of its odd runs (its mask area)."""
        totals = np.zeros(self.first.size - 1, dtype=np.int64)
        areas = np.zeros_like(totals)
        for parity in (0, 1):  # runs at even and at odd indexes of `runs`
            sums = np.concatenate(([0], np.cumsum(self.runs[parity::2])))
            lo, hi = _class_bounds(self.first[:-1], self.first[1:], parity)
            class_sums = sums[hi] - sums[lo]
            totals += class_sums
            # the string's elements at this parity are its odd runs when its first run is at the other parity
            areas += np.where(self.first[:-1] % 2 != parity, class_sums, 0)
        return totals, areas

    def inner_zero_runs(self) -> np.ndarray:
        """Per string: whether a run after its first has length zero (see `inner_zero_runs`)."""
        owner = np.searchsorted(self.first, self.zeros, side="right") - 1
        flags = np.zeros(self.first.size - 1, dtype=bool)
        flags[owner[self.zeros != self.first[owner]]] = True
        return flags


def _decode(joined: bytes, lengths: np.ndarray) -> _Decoded:
    """Decode the compressed RLE strings `joined` one after the other, of these lengths.

    Nearly every number of a real mask's string is one character (a run differs from the run two before by
    less than 16 pixels), so the work is done on the characters: each number's end is a character without the
    "more" bit, its value is that character's signed chunk, and the few longer numbers are completed apart.
    """
    n = lengths.size
    codes = np.frombuffer(joined, dtype=np.uint8)
    chunks = codes - np.uint8(_CHAR_OFFSET)  # wraps characters below '0' to more than 63
    char_ends = np.cumsum(lengths)
    char_starts = char_ends - lengths
    malformed = np.zeros(n, dtype=bool)
    if chunks.size and chunks.max() > 63:
        malformed[np.searchsorted(char_ends, np.flatnonzero(chunks > 63), side="right")] = True
    # A number ends at a character without the "more" bit. Each string's last character ends one in any case
    # (a string whose last character has the bit is truncated), so that no number runs into the next string.
    ends = chunks < _MORE_BIT
    last_chars = char_ends[lengths > 0] - 1
    malformed[lengths > 0] |= ~ends[last_chars]
    ends[last_chars] = True
    numbers = _signed_chunks(chunks[ends])
    more = np.flatnonzero(~ends)
    if more.size:
        too_long = _complete_long_numbers(numbers, chunks, more)
        malformed[np.searchsorted(char_ends, too_long, side="right")] = True
    # the number index of each string's first character: characters before it, less those that end no number
    first = np.append(char_starts - np.searchsorted(more, char_starts), numbers.size)
    runs = _undo_differences(numbers, first)
    not_positive = np.flatnonzero(runs <= 0)
    negative = not_positive[runs[not_positive] < 0]
    malformed[np.searchsorted(first, negative, side="right") - 1] = True
    return _Decoded(runs=runs, first=first, well_formed=~malformed, zeros=not_positive[runs[not_positive] == 0])


def _signed_chunks(chunks: np.ndarray) -> np.ndarray:
    """The 5-bit chunks (uint8, under 32) as signed numbers (-16..15, bit 0x10 the sign), in int64."""
    return ((chunks ^ np.uint8(0x10)).view(np.int8) - np.int8(0x10)).astype(np.int64)


def _complete_long_numbers(numbers: np.ndarray, chunks: np.ndarray, more: np.ndarray) -> np.ndarray:
    """Give the numbers of more than one character their value, in place; return a character of each that is
    longer than 6 characters (its value is then left meaningless).

    `more` are the positions of the characters with the "more" bit: each block of consecutive ones is the start
    of one number, which ends at the character after the block (the number's last, signed, chunk).
    """
    block_first = np.ones(more.size, dtype=bool)
    block_first[1:] = np.diff(more) != 1
    block_last = np.append(block_first[1:], True)
    starts, end_chars = more[block_first], more[block_last] + 1
    length = np.minimum(end_chars - starts + 1, _MAX_CHUNKS)
    value = _signed_chunks(chunks[end_chars]) << (5 * (length - 1))
    block = np.cumsum(block_first) - 1
    position = more - starts[block]  # chunk index of each "more" character within its number
    kept = position < _MAX_CHUNKS - 1
    np.add.at(value, block[kept], (chunks[more[kept]] & 0x1F).astype(np.int64) << (5 * position[kept]))
    # a number's index is its end character's position less the "more" characters up to it
    numbers[end_chars - (np.flatnonzero(block_last) + 1)] = value
    return starts[end_chars - starts + 1 > _MAX_CHUNKS]


def _class_bounds(lo: np.ndarray, hi: np.ndarray, parity: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the indexes of [lo, hi) of one parity start and end in the array of that parity (`x[parity::2]`)."""
    return (lo - parity + 1) // 2, (hi - parity + 1) // 2


def _undo_differences(numbers: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Turn stored numbers into run lengths: run[m] = number[m] + run[m-2] from the fourth run (m = 3) on.

    Summing every other number over the whole array (chain[i] = number[i] + chain[i-2], the running sums of the
    even and of the odd indexes) gives every run up to an offset that is constant over the indexes of one
    parity of one string: a string's odd runs (m = 1, 3, ...) are the chain less its value just before the
    string, its even runs from m = 2 on the chain less its value at the string's first number.
    """
    starts, stops = first[:-1], first[1:]
    runs = np.empty_like(numbers)
    for parity in (0, 1):
        chain = np.cumsum(numbers[parity::2])  # chain[k]: the sum up to number 2 k + parity
        if not chain.size:
            continue
        lo, hi = _class_bounds(starts, stops, parity)
        # the offset is the chain just before the string or at its first number, whichever has this parity
        before = starts - (parity - starts) % 2
        offset = np.where(before >= 0, chain[np.clip((before - parity) // 2, 0, chain.size - 1)], 0)
        runs[parity::2] = chain - np.repeat(offset, hi - lo)
    nonempty = starts[stops > starts]
    runs[nonempty] = numbers[nonempty]  # the first run is stored as it is
    return runs


def decode_rle_strings(strings: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode many pycocotools compressed RLE strings at once, with numpy (no loop over characters).

    Returns `(runs, owner, well_formed)`: the run lengths of all strings concatenated, the index of the
    string each run belongs to, and per string whether it is well formed (characters '0'..'o' only, every
    number complete and at most 6 characters long, every run length non-negative).
    """
    decoded = _decode(b"".join(strings), _lengths(strings))
    return decoded.runs, decoded.owners(), decoded.well_formed


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


@dataclass
class TrackMasks:
    """A track's masks as `read_tracks` finds them: per frame the mask's `areas` (0 where absent), whether its
    RLE has `zero_runs` after the first, and its `spans` (T, 2): the pixels (in column-major order) from the
    first to one past the last that may be in the mask, (0, 0) where absent; and `whole`, the compressed RLE of
    all frames side by side.

    `whole` is a (height, width * T) mask where frame t takes columns t * width to (t + 1) * width - 1 (so that,
    in column-major order, the frames follow one another) and an absent frame is empty; it has no empty runs
    after the first, as pycocotools' `encode` writes RLEs. pycocotools' `iou` on two such masks sums the
    intersections and unions of all frames in one call. None when the mask has 2**29 pixels or more: its
    numbers could then not be read back reliably (see `_MAX_CHUNKS`).
    """

    areas: np.ndarray
    zero_runs: np.ndarray
    spans: np.ndarray
    whole: dict | None


class InvalidRLEString(ValueError):
    """A compressed RLE string `read_tracks` refuses: frame `frame` of track `track`; `ascii` says whether it was
    ASCII (if so, it is malformed or its runs do not cover the frame); `pixels` is the frame's pixel count."""

    def __init__(self, track: int, frame: int, ascii: bool, pixels: int) -> None:
        super().__init__(f"track {track}, frame {frame}: invalid compressed RLE string")
        self.track, self.frame, self.ascii, self.pixels = track, frame, ascii, pixels


def read_tracks(tracks: Sequence[Sequence[dict | None]], frame_sizes: Sequence[tuple[int, int]]) -> list[TrackMasks]:
    """Check and decode the per-frame compressed RLEs (`counts` str or bytes; None where absent) of many tracks,
    whose frames are `frame_sizes[k]` (height, width) for track k: one vectorised decode of all strings.

    A string must be ASCII and well formed (see `decode_rle_strings`), and its runs must cover its frame exactly;
    raises `InvalidRLEString` for the first one, in track and frame order, that is not. The work is done a
    group of tracks of about `_CHUNK_CHARS` characters at a time, so that memory stays bounded.
    """
    if not tracks:
        return []
    present = [[t for t, rle in enumerate(rles) if rle is not None] for rles in tracks]
    strings = [rles[t]["counts"] for rles, frames in zip(tracks, present, strict=True) for t in frames]
    lengths = _lengths(strings)
    table = _FrameTable(
        track_lengths=np.array([len(rles) for rles in tracks], dtype=np.int64),
        frame_pixels=np.array([height * width for height, width in frame_sizes], dtype=np.int64),
        first_string=np.concatenate(([0], np.cumsum([len(frames) for frames in present]))).astype(np.int64),
        frame_of=np.fromiter(itertools.chain.from_iterable(present), dtype=np.int64, count=len(strings)),
    )
    # a chunk of tracks ends where the running character count passes a multiple of the chunk size
    chars = np.concatenate(([0], np.cumsum(lengths)))[table.first_string[1:]]
    bounds = np.concatenate(([0], np.flatnonzero(np.diff(chars // _CHUNK_CHARS)) + 1, [len(tracks)])).tolist()
    masks = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        s_lo, s_hi = table.first_string[lo], table.first_string[hi]
        chunk = table.select(lo, hi)
        masks += _read_chunk(strings[s_lo:s_hi], lengths[s_lo:s_hi], chunk, frame_sizes[lo:hi], lo)
    return masks


@dataclass
class _FrameTable:
    """Where the strings of `read_tracks` come from: track k has `track_lengths[k]` frames of `frame_pixels[k]`
    pixels and its strings are `first_string[k]` to `first_string[k + 1]`; string s is frame `frame_of[s]`."""

    track_lengths: np.ndarray
    frame_pixels: np.ndarray
    first_string: np.ndarray
    frame_of: np.ndarray

    def select(self, lo: int, hi: int) -> _FrameTable:
        """The table of tracks lo to hi - 1 alone."""
        s_lo, s_hi = self.first_string[lo], self.first_string[hi]
        return _FrameTable(
            self.track_lengths[lo:hi],
            self.frame_pixels[lo:hi],
            self.first_string[lo : hi + 1] - s_lo,
            self.frame_of[s_lo:s_hi],
        )

    @property
    def track_of(self) -> np.ndarray:
        """The track of each string."""
        return np.repeat(np.arange(self.track_lengths.size), np.diff(self.first_string))


def _read_chunk(
    strings: list[str | bytes],
    lengths: np.ndarray,
    table: _FrameTable,
    frame_sizes: Sequence[tuple[int, int]],
    first_track: int,
) -> list[TrackMasks]:
    """`read_tracks` of a few tracks at once (the first of them track `first_track`)."""
    joined, ascii = _ascii_bytes(strings)
    decoded = _decode(joined, lengths)
    totals, areas = decoded.run_sums()
    track_of = table.track_of
    pixels = table.frame_pixels[track_of]
    bad = np.flatnonzero(~(ascii & decoded.well_formed & (totals == pixels)))
    if bad.size:
        k = bad[0]
        raise InvalidRLEString(first_track + int(track_of[k]), int(table.frame_of[k]), bool(ascii[k]), int(pixels[k]))
    # per-frame values of all tracks in one array, then a view per track
    frame_start = np.concatenate(([0], np.cumsum(table.track_lengths)))
    frame = frame_start[track_of] + table.frame_of
    all_areas = np.zeros(frame_start[-1], dtype=np.int64)
    all_areas[frame] = areas
    all_zero_runs = np.zeros(frame_start[-1], dtype=bool)
    all_zero_runs[frame] = decoded.inner_zero_runs()
    # the mask starts after its first (background) run and ends before its last run if that is background
    first, stop = decoded.first[:-1], decoded.first[1:]
    nonempty = stop > first
    all_spans = np.zeros((frame_start[-1], 2), dtype=np.int64)
    all_spans[frame[nonempty], 0] = decoded.runs[first[nonempty]]
    last_background = np.where((stop - first) % 2 == 1, decoded.runs[np.maximum(stop - 1, 0)], 0)
    all_spans[frame[nonempty], 1] = (pixels - last_background)[nonempty]
    wholes = _whole_rles(decoded, table, track_of, frame_sizes)
    cuts = frame_start[1:-1]
    return [
        TrackMasks(areas=areas, zero_runs=zero_runs, spans=spans, whole=whole)
        for areas, zero_runs, spans, whole in zip(
            np.split(all_areas, cuts), np.split(all_zero_runs, cuts), np.split(all_spans, cuts), wholes, strict=True
        )
    ]


def _whole_rles(
    decoded: _Decoded, table: _FrameTable, track_of: np.ndarray, frame_sizes: Sequence[tuple[int, int]]
) -> list[dict | None]:
    """The `TrackMasks.whole` RLEs of the tracks of `table`, whose (valid) strings were decoded together."""
    totals = table.track_lengths * table.frame_pixels
    # Where each run ends, in one space for all tracks: track k starts at starts[k], the tracks one pixel apart
    # so that they stay apart, and its frame t at t * frame_pixels after that.
    starts = np.concatenate(([0], np.cumsum(totals + 1)))
    first, stop = decoded.first[:-1], decoded.first[1:]
    run_ends = np.cumsum(decoded.runs)
    frame_pixels = table.frame_pixels[track_of]
    offsets = starts[track_of] + table.frame_of * frame_pixels - np.concatenate(([0], run_ends))[first]
    switches = run_ends + np.repeat(offsets, stop - first)
    # The mask switches between background and foreground at every run end but a frame's last, which is the
    # frame's end: a switch only if the last run is foreground (an even number of runs) and a frame follows
    # (which starts with background).
    ends_nothing = ((stop - first) % 2 == 1) | (table.frame_of == table.track_lengths[track_of] - 1)
    keep = np.ones(switches.size, dtype=bool)
    keep[(stop - 1)[ends_nothing & (stop > first)]] = False
    switches = switches[keep]
    # Several switches at one pixel (empty runs; a frame ending and the next starting with foreground) cancel
    # out in pairs.
    repeated = np.flatnonzero(switches[1:] == switches[:-1])
    if repeated.size:
        group = np.flatnonzero(np.append(True, switches[1:] != switches[:-1]))
        switches = switches[group[np.diff(np.append(group, switches.size)) % 2 == 1]]
    # Track k's runs lie between its start, its switches and its end (between the tracks, one-pixel gaps).
    marks = np.stack((starts[:-1], starts[:-1] + totals), axis=1).ravel()
    mark_at = np.searchsorted(switches, marks) + np.arange(marks.size)  # indexes in `bounds`
    bounds = np.insert(switches, mark_at - np.arange(marks.size), marks)
    runs = np.diff(bounds)
    first_run, end_run = mark_at[0::2], mark_at[1::2]
    # Stored numbers: from the fourth run of a track on, the difference to the run two before.
    numbers = np.empty_like(runs)
    numbers[:2] = runs[:2]
    np.subtract(runs[2:], runs[:-2], out=numbers[2:])
    for m in range(3):
        kept = first_run[first_run + m < end_run] + m
        numbers[kept] = runs[kept]
    text, at = _encode_numbers(numbers, mark_at)
    return [
        {"size": [height, width * length], "counts": text[start:end]} if total <= _MAX_WHOLE_PIXELS else None
        for (height, width), length, total, start, end in zip(
            frame_sizes,
            table.track_lengths.tolist(),
            totals.tolist(),
            at[0::2].tolist(),
            at[1::2].tolist(),
            strict=True,
        )
    ]


def _encode_numbers(numbers: np.ndarray, at: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Numbers as the characters of a pycocotools compressed RLE string (the inverse of `_decode`'s reading:
    5-bit chunks, low bits first, bit 0x20 on all but the last, as few chunks as hold the number with its sign),
    and where the characters of the numbers of indexes `at` start.

    Nearly all numbers take one character; the others get their further characters inserted after their first.
    """
    first_chunks = numbers.astype(np.uint8) & np.uint8(0x1F)  # the low 5 bits
    long = np.flatnonzero((numbers + 16).view(np.uint64) >= 32)  # not in -16..15
    value = numbers[long]
    magnitude = value ^ (value >> 63)  # the number fits in k chunks if this is under 2**(5k - 1)
    size = 1 + sum((magnitude >= 1 << (5 * k - 1)).astype(np.int64) for k in range(1, _MAX_CHUNKS))
    first_chunks[long] |= _MORE_BIT
    # the further chunks k = 1 .. size - 1 of each long number, in order
    extra = size - 1
    owner = np.repeat(np.arange(long.size), extra)
    chunk_index = np.arange(owner.size) - (np.cumsum(extra) - extra)[owner] + 1
    further = ((value[owner] >> (5 * chunk_index)) & 0x1F).astype(np.uint8)
    further[chunk_index < size[owner] - 1] |= _MORE_BIT
    chars = np.insert(first_chunks, long[owner] + 1, further) + np.uint8(_CHAR_OFFSET)
    return chars.tobytes(), at + np.concatenate(([0], np.cumsum(extra)))[np.searchsorted(long, at)]


def _lengths(strings: Sequence[str | bytes]) -> np.ndarray:
    """The lengths of the strings, as an array."""
    return np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))


def _ascii_bytes(strings: Sequence[str | bytes]) -> tuple[bytes, np.ndarray]:
    """The strings joined into bytes, a non-ASCII character as '?' (one byte, so that lengths still hold), and
    which of them were ASCII."""
    try:
        return "".join(strings).encode("ascii"), np.ones(len(strings), dtype=bool)
    except (TypeError, UnicodeEncodeError):  # bytes among them, or a non-ASCII character
        ascii = np.array([isinstance(s, bytes) or s.isascii() for s in strings], dtype=bool)
        return b"".join(s if isinstance(s, bytes) else s.encode("ascii", errors="replace") for s in strings), ascii


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
