"""The checkpoint reader: the restricted reader of model-zoo `.pkl` files (`conversion/safe_pickle.py`) loads every
pickle protocol of numpy weights, refuses code, abusive calls and oversized declarations with a `CheckpointError`;
random or damaged `.pkl` and `.pth` files give the right weights or a `CheckpointError`, never another exception,
never code execution."""

import codecs
import collections
import io
import os
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeling_m2f_video.conversion import CheckpointError, UnsafeCheckpointError
from modeling_m2f_video.conversion.checkpoint_io import load_checkpoint

try:  # numpy >= 2 moved the C module; the pickles name whichever one wrote them.
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

FIXTURE = Path(__file__).parent / "fixtures/official/r50_slim/model_final.pkl"

WEIGHTS = collections.OrderedDict(
    conv=np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    bias=np.linspace(-1, 1, 5, dtype=np.float64),
    fortran=np.asfortranarray(np.arange(6, dtype=np.int64).reshape(2, 3)),
    big_endian=np.arange(4, dtype=">f4"),
    mask=np.array([True, False, True]),
    empty=np.zeros((0, 3), dtype=np.float16),
    step=np.int64(7),
)
PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
# Hypothesis settings for the file-level properties: no example database in the working tree, no time limit.
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def model_zoo_bytes(protocol: int, weights: dict = WEIGHTS) -> bytes:
    return pickle.dumps({"model": weights, "__author__": "test"}, protocol=protocol)


def write(tmp_path: Path, data: bytes, name: str = "model_final.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_same_weights(loaded: dict[str, torch.Tensor], weights: dict = WEIGHTS) -> None:
    assert list(loaded) == list(weights)
    for name, expected in weights.items():
        expected = np.asarray(expected)
        assert loaded[name].numpy().dtype == expected.dtype.newbyteorder("="), name
        np.testing.assert_array_equal(loaded[name].numpy(), expected, err_msg=name)


class Reduces:
    """Pickles as `function(*args)`, optionally followed by BUILD with `state`: a hand-made pickle program."""

    def __init__(self, function, *args, state=None):
        self.function, self.args, self.state = function, args, state

    def __reduce__(self):
        return (self.function, self.args) if self.state is None else (self.function, self.args, self.state)


class RunsShellCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ---------------------------------------------------------------------------------------------------------------
# What loads
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_pickle_protocol_of_numpy_weights_loads(tmp_path, protocol):
    """Protocol 2 writes bytes as `_codecs.encode(text, "latin1")` and `b""` as `bytes()`, protocol 5 arrays as
    `_frombuffer`; big-endian arrays become native, Fortran-order arrays keep their values."""
    assert_same_weights(load_checkpoint(write(tmp_path, model_zoo_bytes(protocol))))


@pytest.mark.parametrize("name", ["MODEL_FINAL.PKL", "model.Pkl"])
def test_extensions_are_case_insensitive(tmp_path, name):
    assert_same_weights(load_checkpoint(write(tmp_path, model_zoo_bytes(2), name)))


def test_a_python2_style_pickle_with_str_data_loads(tmp_path):
    """Python 2 wrote the raw data of arrays as `str`, which `encoding="latin1"` reads back."""
    array = np.arange(3, dtype=np.float32)
    state = (1, array.shape, array.dtype, False, array.tobytes().decode("latin1"))
    weights = {"w": Reduces(_reconstruct, np.ndarray, (0,), b"b", state=state)}
    loaded = load_checkpoint(write(tmp_path, pickle.dumps({"model": weights}, protocol=2)))
    np.testing.assert_array_equal(loaded["w"].numpy(), array)


def test_loaded_tensors_are_writable_and_the_shared_dtypes_untouched(tmp_path):
    loaded = load_checkpoint(write(tmp_path, model_zoo_bytes(4)))
    assert loaded["conv"].numpy().flags.writeable
    assert np.dtype("f4").byteorder == "=" and np.dtype("f4").str == "<f4"


# ---------------------------------------------------------------------------------------------------------------
# What is refused
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, message",
    [
        (Reduces(codecs.encode, "x", "utf-16"), "only str with 'latin1'"),
        (Reduces(codecs.encode, "eA==", "base64"), "only str with 'latin1'"),
        (Reduces(codecs.encode, b"x", "latin1"), "only str with 'latin1'"),
        (Reduces(bytes, 10**12), r"only bytes\(\) is allowed"),
        (Reduces(collections.OrderedDict, [("a", 1)]), r"only OrderedDict\(\)"),
        (Reduces(np.ndarray, (10**12,)), "refused a call of numpy.ndarray"),
        (Reduces(_reconstruct, collections.OrderedDict, (0,), b"b"), "only numpy.ndarray may be rebuilt"),
        (Reduces(np.dtype, "O", False, True), "cannot be a weight"),
    ],
)
def test_allowed_globals_refuse_every_other_use(tmp_path, payload, message):
    """Each allowed global does only what numpy's own pickles need: `_codecs.encode` only turns a str into latin1
    bytes (no other codec, e.g. base64 or zlib), `bytes` makes only `b""`, and nothing allocates by declaration."""
    path = write(tmp_path, pickle.dumps({"model": {"w": payload}}, protocol=2))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_object_arrays_are_refused(tmp_path):
    path = write(tmp_path, model_zoo_bytes(4, {"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(CheckpointError, match="cannot be a weight"):
        load_checkpoint(path)


def test_a_huge_declared_array_is_refused_before_allocating(tmp_path):
    """A few hundred bytes declaring a 4 TB array: refused from the declared shape, nothing allocated."""
    state = (1, (10**12,), np.dtype("f4"), False, b"\0" * 16)
    path = write(tmp_path, pickle.dumps({"model": {"w": Reduces(_reconstruct, np.ndarray, (0,), b"b", state=state)}}))
    with pytest.raises(CheckpointError, match=r"shape \(1000000000000,\) of float32 needs 4000000000000 bytes"):
        load_checkpoint(path)


@pytest.mark.parametrize("opcode", [pickle.BINBYTES8, pickle.BINUNICODE8, pickle.BYTEARRAY8])
def test_a_huge_declared_length_is_refused_before_allocating(tmp_path, opcode):
    """The C unpickler allocates a declared byte length before reading it; the file is checked first, so an
    8-byte length of 8 GB in a 20-byte file allocates nothing."""
    data = pickle.PROTO + b"\x05" + opcode + (8 * 2**30).to_bytes(8, "little") + b"abcd" + pickle.STOP
    path = write(tmp_path, data)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            load_checkpoint(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_data_referenced_many_times_cannot_multiply_memory(tmp_path):
    """One 1 MB block shared by 100 arrays (or encoded 100 times) would need 100 MB from a 1 MB file: refused."""
    block = bytes(2**20)
    state = (1, (2**18,), np.dtype("f4"), False, block)
    arrays = {f"w{i}": Reduces(_reconstruct, np.ndarray, (0,), b"b", state=state) for i in range(100)}
    with pytest.raises(CheckpointError, match="more array data"):
        load_checkpoint(write(tmp_path, pickle.dumps({"model": arrays}, protocol=4), "arrays.pkl"))
    text = block.decode("latin1")
    encoded = {f"w{i}": Reduces(codecs.encode, text, "latin1") for i in range(100)}
    with pytest.raises(CheckpointError, match="more encoded bytes"):
        load_checkpoint(write(tmp_path, pickle.dumps({"model": encoded}, protocol=4), "encoded.pkl"))


def test_names_from_the_file_are_printed_escaped(tmp_path):
    data = pickle.PROTO + b"\x02" + pickle.GLOBAL + b"os\x1b[31m\nsystem\n" + pickle.STOP
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint(write(tmp_path, data))
    assert "\x1b" not in str(error.value) and r"os\x1b[31m.system" in str(error.value)


def test_an_empty_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="the file is empty"):
        load_checkpoint(write(tmp_path, b""))


# ---------------------------------------------------------------------------------------------------------------
# Properties: random and damaged files
# ---------------------------------------------------------------------------------------------------------------


def load_or_refuse(path: Path) -> dict[str, torch.Tensor] | None:
    """The weights of `path`, or None when it is refused with a `CheckpointError`; anything else fails the test."""
    try:
        loaded = load_checkpoint(path)
    except CheckpointError:
        return None
    assert loaded and all(isinstance(name, str) and isinstance(t, torch.Tensor) for name, t in loaded.items())
    return loaded


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_give_weights_or_a_checkpoint_error(tmp_path_factory, data):
    load_or_refuse(write(tmp_path_factory.mktemp("random"), data))


@FUZZ
@given(protocol=st.sampled_from(PROTOCOLS), fraction=st.floats(0, 1, exclude_max=True))
def test_truncated_pickles_give_a_checkpoint_error(tmp_path_factory, protocol, fraction):
    data = model_zoo_bytes(protocol)
    path = write(tmp_path_factory.mktemp("truncated"), data[: int(fraction * len(data))])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@FUZZ
@given(protocol=st.sampled_from(PROTOCOLS), edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=4))
def test_damaged_pickles_give_weights_or_a_checkpoint_error(tmp_path_factory, protocol, edits):
    data = bytearray(model_zoo_bytes(protocol))
    for position, value in edits:
        data[position % len(data)] = value
    loaded = load_or_refuse(write(tmp_path_factory.mktemp("damaged"), bytes(data)))
    if bytes(data) == model_zoo_bytes(protocol):
        assert_same_weights(loaded)


@FUZZ
@given(protocol=st.sampled_from([0, 2, 4]), edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=3))
def test_damaged_malicious_pickles_never_run_code(tmp_path_factory, protocol, edits):
    folder = tmp_path_factory.mktemp("malicious")
    marker = folder / "executed"
    data = bytearray(model_zoo_bytes(protocol, {"w": np.zeros(2, np.float32), "x": RunsShellCommand(marker)}))
    for position, value in edits:
        data[position % len(data)] = value
    load_or_refuse(write(folder, bytes(data)))
    assert not marker.exists()


@settings(max_examples=25, deadline=None, database=None)
@given(cut=st.integers(0, FIXTURE.stat().st_size - 1))
def test_truncations_of_a_real_model_zoo_file_give_a_checkpoint_error(tmp_path_factory, cut):
    path = write(tmp_path_factory.mktemp("fixture"), FIXTURE.read_bytes()[:cut])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def torch_bytes(legacy: bool) -> bytes:
    buffer = io.BytesIO()
    native = {
        name: np.asarray(array).astype(np.asarray(array).dtype.newbyteorder("=")) for name, array in WEIGHTS.items()
    }
    weights = {"model": {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in native.items()}}
    torch.save(weights, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@FUZZ
@given(
    legacy=st.booleans(),
    edits=st.lists(st.tuples(st.integers(0), st.integers(0, 255)), max_size=3),
    fraction=st.floats(0, 1),
)
def test_damaged_pth_files_give_weights_or_a_checkpoint_error(tmp_path_factory, legacy, edits, fraction):
    data = bytearray(torch_bytes(legacy))
    for position, value in edits:
        data[position % len(data)] = value
    data = bytes(data[: max(1, int(fraction * len(data)))])
    loaded = load_or_refuse(write(tmp_path_factory.mktemp("pth"), data, "model_final.pth"))
    if data == torch_bytes(legacy):
        assert_same_weights(loaded)
