"""The reader harness itself: it accepts a good archive and rejects a corrupt one."""

import zipfile

import pytest

from .readers import check_with_all_readers


def test_harness_accepts_a_stored_archive_and_rejects_a_corrupt_one(tmp_path, java_classes):
    path = tmp_path / "good.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.txt", b"hello")
        archive.writestr("d/b.bin", bytes(range(256)) * 100)
    entries = check_with_all_readers(path, java_classes)
    assert set(entries) == {"a.txt", "d/b.bin"}

    data = bytearray(path.read_bytes())
    data[data.index(b"hello")] ^= 0xFF  # a flipped data byte breaks every reader's CRC check
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises((AssertionError, zipfile.BadZipFile)):
        check_with_all_readers(bad, java_classes)
