"""`tc.data.idx`: the IDX reader, on hand-made files, gzipped and raw, good and bad."""

import gzip
import struct

import numpy as np
import pytest

from tc.data import idx

# This module tests code that never calls Keras (numpy, pandas, files): CI runs it in one
# backend's leg only (.ci/run).
pytestmark = pytest.mark.backend_independent


def raw_idx(array, kind=0x08):
    """The IDX bytes of `array`, built by hand from the format's definition."""
    header = bytes([0, 0, kind, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("array", [
    np.arange(7, dtype=np.uint8),
    np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8),
])
def test_reads_labels_and_images_gzipped_or_raw(tmp_path, array, compressed):
    payload = raw_idx(array)
    path = tmp_path / ("file.gz" if compressed else "file")
    path.write_bytes(gzip.compress(payload) if compressed else payload)
    read = idx.read(str(path), ndim=array.ndim)
    assert read.dtype == np.uint8 and read.shape == array.shape
    np.testing.assert_array_equal(read, array)


def test_reads_big_endian_types_into_native_order(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e6]], np.float32)
    (tmp_path / "f").write_bytes(raw_idx(values, kind=0x0D))
    np.testing.assert_array_equal(idx.read(str(tmp_path / "f")), values)


def test_write_round_trips(tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    idx.write(str(tmp_path / "a.gz"), array)
    assert (tmp_path / "a.gz").read_bytes()[:2] == idx.GZIP_MAGIC
    np.testing.assert_array_equal(idx.read(str(tmp_path / "a.gz")), array)


@pytest.mark.parametrize("payload, match", [
    (b"\x08\x03\x00\x00" + bytes(20), "not an IDX file.*magic number is 08030000"),
    (b"", "not an IDX file.*empty"),
    (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 2) + bytes(2), "unknown IDX type 0x07"),
    (bytes([0, 0, 0x08, 3]) + struct.pack(">I", 2), "truncated header"),
    (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + bytes(9), "9 bytes of data.*needs 10"),
    (bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + bytes(11), "11 bytes of data.*needs 10"),
])
def test_bad_files_are_a_value_error_naming_the_file(tmp_path, payload, match):
    path = tmp_path / "bad-file"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as error:
        idx.read(str(path))
    assert str(path) in str(error.value)


def test_a_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(raw_idx(np.arange(100, dtype=np.uint8)))[:20])
    with pytest.raises(ValueError, match="cut.gz"):
        idx.read(str(path))


def test_a_rank_other_than_expected_is_refused(tmp_path):
    (tmp_path / "labels").write_bytes(raw_idx(np.zeros((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="2-dimensional array; expected 1"):
        idx.read(str(tmp_path / "labels"), ndim=1)


def write_split(directory, images, labels, split="train"):
    images_stem, labels_stem = idx.SPLIT_FILES[split]
    (directory / f"{images_stem}.gz").write_bytes(gzip.compress(raw_idx(images)))
    (directory / labels_stem).write_bytes(raw_idx(labels))


def test_a_split_needs_as_many_labels_as_images(tmp_path):
    write_split(tmp_path, np.zeros((4, 2, 2), np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="3 labels for the 4 images"):
        idx.read_split(str(tmp_path), "train")


def test_a_split_reads_mixed_gzipped_and_raw_files_and_names_a_missing_one(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, (4, 2, 2), dtype=np.uint8)
    write_split(tmp_path, images, np.array([0, 1, 2, 3], np.uint8))
    x, y = idx.read_split(str(tmp_path), "train")
    np.testing.assert_array_equal(x, images)
    assert y.dtype == np.int32 and list(y) == [0, 1, 2, 3]
    assert not idx.holds_dataset(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        idx.read_split(str(tmp_path), "test")
