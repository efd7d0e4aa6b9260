"""The IDX file format of MNIST, Fashion-MNIST, KMNIST and EMNIST, read with numpy alone.

An IDX file is a 4-byte magic number `0x00 0x00 <type> <ndim>`, then `ndim` big-endian uint32
dimensions, then the values in C order (Y. LeCun's MNIST page). `read` takes the file raw or
gzipped (by its content, not its name) and checks everything it can: the magic number, the
type, the header and the amount of data.
"""

import gzip
import os

import numpy as np

__all__ = ["find", "GZIP_MAGIC", "holds_dataset", "read", "read_split", "SPLIT_FILES", "TYPES",
           "write"]

# IDX type byte -> numpy dtype (multi-byte types are big-endian).
TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
         0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"


def _contents(path):
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable gzip file ({error}).") from None
    return data


def read(path, ndim=None):
    """The array stored in the IDX file at `path` (gzipped or not).

    Args:
        path: the file.
        ndim: the number of dimensions it must have (e.g. 1 for labels, 3 for images), or None.

    Raises:
        ValueError: naming the file, when the magic number, the type, the number of dimensions
            or the amount of data is wrong.
    """
    data = _contents(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (its magic number is {data[:4].hex() or 'empty'}"
                         ", an IDX file starts with 0000 followed by a type and a rank).")
    kind, rank = data[2], data[3]
    if kind not in TYPES:
        raise ValueError(f"{path}: unknown IDX type 0x{kind:02x}; valid types: "
                         f"{', '.join(f'0x{t:02x}' for t in TYPES)}.")
    if ndim is not None and rank != ndim:
        raise ValueError(f"{path}: holds a {rank}-dimensional array; expected {ndim} "
                         "dimensions.")
    header = 4 + 4 * rank
    if len(data) < header:
        raise ValueError(f"{path}: truncated header ({len(data)} bytes for {rank} dimensions).")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=rank, offset=4))
    dtype = TYPES[kind]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: {len(data) - header} bytes of data, but its header "
                         f"{shape} of {dtype.name} needs {expected} (truncated or corrupt).")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write(path, array, compress=None):
    """Writes `array` as an IDX file (gzipped when `compress`, or when `path` ends in .gz)."""
    array = np.asarray(array)
    kinds = {dtype.newbyteorder("="): kind for kind, dtype in TYPES.items()}
    kind = kinds.get(array.dtype.newbyteorder("="))
    if kind is None:
        raise ValueError(f"IDX cannot hold dtype {array.dtype}; valid: "
                         f"{', '.join(d.name for d in TYPES.values())}.")
    payload = (bytes([0, 0, kind, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
               + np.ascontiguousarray(array, TYPES[kind]).tobytes())
    compress = path.endswith(".gz") if compress is None else compress
    with open(path, "wb") as handle:
        handle.write(gzip.compress(payload) if compress else payload)


SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def find(directory, stem):
    """The path of `stem` or `stem.gz` in `directory`, or None."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def holds_dataset(directory):
    """Whether `directory` holds the four standard files (gzipped or not)."""
    return bool(directory) and all(find(directory, stem) for stems in SPLIT_FILES.values()
                                   for stem in stems)


def read_split(directory, split):
    """`(images, labels)` of split "train" or "test" of the standard files in `directory`:
    uint8 images `(N, H, W)` and int32 labels `(N,)`.

    Raises:
        FileNotFoundError: a file is missing, naming it.
        ValueError: a bad file (see `read`), or a label count that differs from the image count.
    """
    images_stem, labels_stem = SPLIT_FILES[split]
    paths = []
    for stem in (images_stem, labels_stem):
        path = find(directory, stem)
        if path is None:
            raise FileNotFoundError(f"{os.path.join(directory, stem)}[.gz] does not exist.")
        paths.append(path)
    images, labels = read(paths[0], ndim=3), read(paths[1], ndim=1)
    if len(images) != len(labels):
        raise ValueError(f"{paths[1]}: {len(labels)} labels for the {len(images)} images of "
                         f"{paths[0]}.")
    return images.astype(np.uint8), labels.astype(np.int32)
