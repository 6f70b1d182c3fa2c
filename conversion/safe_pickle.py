"""Reading a detectron2 model-zoo `.pkl` without trusting it: no code from the file runs, no memory beyond its size.

A pickle is a small program: it names globals (functions, classes) and calls them. `RestrictedUnpickler`
resolves only the globals that pickled numpy arrays need, and each of those to a checked stand-in that does
exactly what the pickler's own reduce functions require and nothing more (`ALLOWED_PICKLE_GLOBALS`). Any other
global, a custom `__reduce__`, `os.system`, `builtins.exec`, is refused by name before it can be called.

Memory is bounded by the file size, so that a small file cannot declare a huge array and exhaust memory:

- before unpickling, every length the file declares (bytes, strings, frames) is checked against the bytes that
  are really there (`check_declared_lengths`), because the C unpickler allocates a declared length before reading;
- arrays are built from the data the file holds, and the declared size of all arrays together may not exceed the
  file size; so may not the bytes `_codecs.encode` makes (protocol-2 pickles encode every `bytes` that way), so
  that one large string referenced many times cannot be copied many times.
"""

import collections
import mmap
import pickle
import pickletools
import reprlib
from pathlib import Path
from typing import Any

import numpy

from .errors import CheckpointError, UnsafeCheckpointError

# The global names a weights pickle may use -> the attribute of `_StandIns` that is returned in their place.
ALLOWED_PICKLE_GLOBALS: dict[tuple[str, str], str] = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("numpy.core.multiarray", "scalar"): "scalar",
    ("numpy._core.multiarray", "scalar"): "scalar",
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("collections", "OrderedDict"): "ordered_dict",
    # Protocol-2 pickles write `bytes` as `_codecs.encode(text, "latin1")`, and `b""` as `bytes()`.
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "empty_bytes",
    ("builtins", "bytes"): "empty_bytes",
}

# Element types torch can hold, in any byte order: bool, signed integers, uint8, float16/32/64.
WEIGHT_DTYPES = frozenset(numpy.dtype(code) for code in ("?", "i1", "i2", "i4", "i8", "u1", "f2", "f4", "f8"))
# numpy arrays have at most 64 dimensions; weights far fewer.
MAX_DIMENSIONS = 32

# What a truncated or corrupt pickle raises while being parsed or unpickled.
CORRUPT_PICKLE_ERRORS = (
    pickle.UnpicklingError,
    EOFError,
    ValueError,
    TypeError,
    AttributeError,
    IndexError,
    KeyError,
    OverflowError,
    RecursionError,
)


def _shown(value: Any) -> str:
    """`repr` of an object from the file for an error message, cut short (a file can hold huge values)."""
    short = reprlib.Repr()
    short.maxstring = short.maxother = 80
    return short.repr(value)


class _NdarrayToken:
    """Stands for `numpy.ndarray` in a pickle: `_reconstruct` accepts it, but calling it (which would allocate an
    array of any declared shape) is refused."""

    def __call__(self, *args: Any) -> None:
        raise UnsafeCheckpointError("refused a call of numpy.ndarray: arrays are only rebuilt from their data")

    def __repr__(self) -> str:
        return "numpy.ndarray (placeholder)"


class _ByteBudget:
    """A number of bytes that the unpickled objects of one kind may take together (the file size)."""

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.used = limit, what, 0

    def charge(self, size: int) -> None:
        self.used += size
        if self.used > self.limit:
            raise CheckpointError(
                f"declares more {self.what} ({self.used} bytes so far) than the file holds ({self.limit} bytes)"
            )


class PendingArray:
    """What `_reconstruct` returns: an empty array record that the pickle's BUILD step fills with `__setstate__`.

    The state (version, shape, dtype, Fortran order, raw data) is checked before numpy sees it (`_checked_array`).
    """

    def __init__(self, budget: _ByteBudget):
        self._budget = budget
        self.array: numpy.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None:
            raise CheckpointError("an array's data is given twice")
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise CheckpointError(f"malformed array state ({type(state).__name__})")
        shape, dtype, fortran_order, data = state[-4:]
        if type(fortran_order) is not bool:
            raise CheckpointError(f"malformed array state: Fortran order {_shown(fortran_order)}")
        self.array = _checked_array(self._budget, shape, dtype, fortran_order, data)


def _checked_array(budget: _ByteBudget, shape: Any, dtype: Any, fortran_order: bool, data: Any) -> numpy.ndarray:
    """The array of `shape` and `dtype` over the raw `data` the file holds, once all of it is checked: a weight
    dtype, exactly as many bytes as the shape needs, and the file's array budget not exceeded."""
    dtype = _weight_dtype(dtype)
    size = _numel(_checked_shape(shape)) * dtype.itemsize
    if type(data) not in (bytes, bytearray, str) or len(data) != size:
        raise CheckpointError(f"malformed array: shape {shape} of {dtype} needs {size} bytes of data")
    budget.charge(size)
    if isinstance(data, bytearray):  # protocol 5: a writable buffer, used in place
        array = numpy.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran_order else "C")
    else:  # numpy's own `__setstate__` shares the immutable bytes and still gives a writable array
        raw = data.encode("latin1") if isinstance(data, str) else data  # Python 2 pickles hold `str` data
        array = numpy.empty(0, dtype=dtype)
        array.__setstate__((1, shape, dtype, fortran_order, raw))
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


class _StandIns:
    """The objects `RestrictedUnpickler.find_class` returns for `ALLOWED_PICKLE_GLOBALS`."""

    ndarray = _NdarrayToken()

    def __init__(self, file_size: int):
        self._arrays = _ByteBudget(file_size, "array data")
        self._encoded = _ByteBudget(file_size, "encoded bytes")

    def reconstruct(self, cls: Any, shape: Any, dtype: Any) -> PendingArray:
        """`numpy._core.multiarray._reconstruct(ndarray, (0,), b"b")`: the empty array that BUILD then fills."""
        if cls is not self.ndarray:
            raise UnsafeCheckpointError(f"refused `_reconstruct` of {_shown(cls)}: only numpy.ndarray may be rebuilt")
        return PendingArray(self._arrays)

    def frombuffer(self, data: Any, dtype: Any, shape: Any, order: Any) -> numpy.ndarray:
        """`numpy._core.numeric._frombuffer(buffer, dtype, shape, order)`: how protocol 5 pickles an array."""
        if type(order) is not str or order not in ("C", "F"):
            raise CheckpointError(f"malformed array: order {_shown(order)}")
        return _checked_array(self._arrays, shape, dtype, order == "F", data)

    def scalar(self, dtype: Any, data: Any) -> numpy.generic:
        """`numpy._core.multiarray.scalar(dtype, raw)`: one number of a weight dtype from its raw bytes."""
        dtype = _weight_dtype(dtype)
        if type(data) not in (bytes, str) or len(data) != dtype.itemsize:
            raise CheckpointError(f"malformed numpy scalar of {dtype}")
        raw = data.encode("latin1") if isinstance(data, str) else data
        return numpy.frombuffer(raw, dtype=dtype)[0]

    @staticmethod
    def dtype(code: Any, align: Any = False, copy: Any = False) -> numpy.dtype:
        """`numpy.dtype("f4", False, True)`: a new copy (never numpy's shared instance, which the pickle's BUILD step
        then changes) of a weight dtype; the dtype is checked again where it is used, after BUILD."""
        if type(code) is not str or type(align) is not bool or type(copy) is not bool:
            raise UnsafeCheckpointError("refused numpy.dtype(...): expected a type code and two flags")
        return _weight_dtype(numpy.dtype(code, align=align, copy=True))

    @staticmethod
    def ordered_dict(*args: Any) -> collections.OrderedDict:
        """`collections.OrderedDict()`: empty (pickles add the items afterwards), so that it copies nothing."""
        if args:
            raise UnsafeCheckpointError("refused collections.OrderedDict(...) with arguments: only OrderedDict()")
        return collections.OrderedDict()

    def encode(self, text: Any, encoding: Any) -> bytes:
        """`_codecs.encode(text, "latin1")`: a `str` back to the `bytes` it stands for, and no other codec."""
        if type(text) is not str or type(encoding) is not str or encoding != "latin1":
            codec = _shown(encoding) if isinstance(encoding, str) else type(encoding).__name__
            raise UnsafeCheckpointError(
                f"refused `_codecs.encode` of {type(text).__name__} with {codec}: only str with 'latin1'"
            )
        self._encoded.charge(len(text))
        return text.encode("latin1")

    @staticmethod
    def empty_bytes(*args: Any) -> bytes:
        """`bytes()`: the empty bytes object, and no other call of `bytes` (`bytes(n)` would allocate n bytes)."""
        if args:
            raise UnsafeCheckpointError("refused bytes(...) with arguments: only bytes() is allowed")
        return b""


def _weight_dtype(dtype: Any) -> numpy.dtype:
    """`dtype` if it is a numpy dtype torch can hold as a weight (plain, no fields); `CheckpointError` otherwise."""
    if not isinstance(dtype, numpy.dtype):
        raise CheckpointError(f"expected a numpy dtype, found {type(dtype).__name__}")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.newbyteorder("=") not in WEIGHT_DTYPES:
        raise CheckpointError(f"{_shown(dtype)} cannot be a weight (bool, integers, uint8, float16/32/64)")
    return dtype


def _checked_shape(shape: Any) -> tuple[int, ...]:
    """`shape` if it is a tuple of at most `MAX_DIMENSIONS` sizes that numpy can index (0 <= size < 2**63)."""
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_DIMENSIONS
        or not all(type(size) is int and 0 <= size < 2**63 for size in shape)
    ):
        raise CheckpointError(f"malformed array shape: expected a tuple of at most {MAX_DIMENSIONS} sizes")
    return shape


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves `ALLOWED_PICKLE_GLOBALS` to checked stand-ins and refuses every other global.

    Every callable a pickle can invoke (REDUCE, NEWOBJ, OBJ, INST, ...) must first be looked up through
    `find_class`, so refusing there means no code from the file ever runs. `file_size` bounds the array data and
    encoded bytes the stand-ins create.
    """

    def __init__(self, file: Any, file_size: int):
        super().__init__(file, encoding="latin1")
        self._stand_ins = _StandIns(file_size)

    def find_class(self, module: str, name: str) -> Any:
        stand_in = ALLOWED_PICKLE_GLOBALS.get((module, name))
        if stand_in is None:
            raise UnsafeCheckpointError(
                f"refused to load the global `{printable(module)}.{printable(name)}`: a weights pickle may only "
                "reference numpy arrays, "
                "dtypes, numpy scalars, collections.OrderedDict and latin1-encoded bytes"
            )
        return getattr(self._stand_ins, stand_in)

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(
            "refused a persistent-id reference (this looks like a torch.save file; use the .pth extension)"
        )


def check_declared_lengths(data: mmap.mmap) -> None:
    """Walk the opcodes of `data` without executing any; `ValueError` where a declared length overruns the data.

    `pickletools.genops` reads every counted argument (bytes, strings, long integers) with `read(n)`, which a memory
    map answers with at most the bytes that remain, so a declared length is never allocated before it is checked.
    """
    data.seek(0)
    for _ in pickletools.genops(data):
        pass
    data.seek(0)


def load_pickle(path: Path) -> Any:
    """Unpickle the file at `path` with `RestrictedUnpickler`; arrays come back as `PendingArray` records.

    Raises:
        UnsafeCheckpointError: the file references a global other than `ALLOWED_PICKLE_GLOBALS`.
        CheckpointError: the file is empty, truncated, corrupt, or declares more data than it holds.
    """
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        if size == 0:
            raise CheckpointError(f"{path}: the file is empty")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                check_declared_lengths(data)
                return RestrictedUnpickler(data, size).load()
            except CheckpointError as error:
                raise type(error)(f"{path}: {error}") from None
            except MemoryError:
                raise CheckpointError(f"{path}: not enough memory to load its {size} bytes") from None
            except CORRUPT_PICKLE_ERRORS as error:
                raise CheckpointError(
                    f"{path}: not a readable weights pickle (truncated or corrupt?): "
                    f"{type(error).__name__}: {printable(str(error))}"
                ) from None


def printable(text: str) -> str:
    """`text` with control characters escaped, so that names and bytes from a file cannot drive the terminal."""
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)
