"""Archives written to a local file by the real batch code (no S3), read by every ZIP reader
and inspected byte by byte: classic records where they suffice, zip64 exactly where needed.

The multi-GiB cases are marked `slow`; `make test` runs them (deselect with -m 'not slow').
"""

import random
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from s3zip_dagster.core.limits import GiB, KiB, MiB
from s3zip_dagster.core.localstore import write_archive
from s3zip_dagster.core.plan import (
    STRATEGIES,
    ZERO_STREAM,
    Entry,
    Plan,
    PlanSettings,
    SourceObject,
    SourceRange,
    build_plan,
)

from .readers import check_with_all_readers

# --- A deterministic byte source ------------------------------------------------------------

_PERIOD = 4093  # prime: no entry's pattern lines up with a part or a read
_BLOCK = random.Random(20261204).randbytes(_PERIOD)
_TILE_BYTES = 16 * MiB
_TILE = _BLOCK * (_TILE_BYTES // _PERIOD + 2)


def pattern(key: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the object `key`: _BLOCK repeated, rotated by a shift that
    depends on the key, so that two entries hardly ever hold the same bytes."""
    parts = []
    while start < end:
        shift = (zlib.crc32(key.encode()) + start) % _PERIOD
        length = min(end - start, _TILE_BYTES)
        parts.append(_TILE[shift : shift + length])
        start += length
    return b"".join(parts)


def source(entry: Entry, start: int, end: int) -> bytes:
    return pattern(entry.key, start, end)


def expected_crc(key: str, size: int) -> int:
    crc = 0
    for start in range(0, size, _TILE_BYTES):
        crc = zlib.crc32(pattern(key, start, min(size, start + _TILE_BYTES)), crc)
    return crc


def test_pattern_slices_agree_with_the_whole():
    whole = pattern("k", 0, 3 * _TILE_BYTES + 5)
    assert len(whole) == 3 * _TILE_BYTES + 5
    for start, end in [(0, 1), (7, 5000), (_TILE_BYTES - 3, _TILE_BYTES + 9000),
                       (2 * _TILE_BYTES + 1, 3 * _TILE_BYTES + 5)]:
        assert pattern("k", start, end) == whole[start:end]
    assert pattern("k", 0, 100) != pattern("other", 0, 100)


# --- Writing and reading --------------------------------------------------------------------

MTIME = 1_767_225_600  # 2026-01-01 00:00:00 UTC


def objects_of(sizes: dict[str, int]) -> list[SourceObject]:
    return [SourceObject(key, size, f'"{i}"', MTIME + i) for i, (key, size) in
            enumerate(sizes.items())]


@pytest.fixture
def archive_path(tmp_path):
    """Where the test writes its archive; deleted afterwards, whatever happens."""
    path = tmp_path / "archive.zip"
    yield path
    path.unlink(missing_ok=True)


def write_and_read(plan: Plan, path: Path, java_classes: Path, give_copy_crc: bool = True,
                   zipdetails: bool = True):
    """Write the plan's archive, check its size and CRC-32, run every reader on it."""
    archive_crc = write_archive(plan, source, path, give_copy_crc=give_copy_crc)
    assert path.stat().st_size == plan.archive_size

    crc = 0
    with path.open("rb") as file:
        while chunk := file.read(_TILE_BYTES):
            crc = zlib.crc32(chunk, crc)
    assert crc == archive_crc

    expected = {e.name: (e.size, expected_crc(e.key, e.size)) for e in plan.entries}
    check_with_all_readers(path, java_classes, expected, zipdetails=zipdetails)
    return expected


# --- The records, parsed by hand ------------------------------------------------------------

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_ZIP64_EOCD = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_MAX32 = 0xFFFFFFFF


def _extras(blob: bytes) -> dict[int, bytes]:
    fields = {}
    while blob:
        field_id, length = struct.unpack_from("<HH", blob)
        assert field_id not in fields, f"extra {field_id:#06x} twice"
        fields[field_id] = blob[4 : 4 + length]
        assert len(fields[field_id]) == length, "extra field runs past its header"
        blob = blob[4 + length :]
    return fields


@dataclass
class CentralRecord:
    made_by: int
    needed: int
    flags: int
    method: int
    dos: tuple[int, int]  # DOS time, DOS date
    crc: int
    size_fields: tuple[int, int]
    attributes: int
    offset_field: int
    name: bytes
    extras: dict[int, bytes]


@dataclass
class EndRecords:
    count: int
    directory_size: int
    directory_offset: int
    zip64: tuple | None  # the zip64 end record's fields
    locator: tuple | None
    classic: tuple


def read_end_records(path: Path) -> EndRecords:
    size = path.stat().st_size
    with path.open("rb") as file:
        file.seek(size - _EOCD.size - _ZIP64_LOCATOR.size)
        tail = file.read()
        classic = _EOCD.unpack_from(tail, _ZIP64_LOCATOR.size)
        assert classic[0] == 0x06054B50 and classic[7] == 0, "no end record without comment"
        assert classic[1:3] == (0, 0), "disk numbers"

        if struct.unpack_from("<I", tail)[0] != 0x07064B50:
            return EndRecords(classic[3], classic[5], classic[6], None, None, classic)

        locator = _ZIP64_LOCATOR.unpack_from(tail)
        assert locator[1] == 0, "disk with the zip64 end record"
        assert locator[3] == 1, "total number of disks"
        assert locator[2] == size - _EOCD.size - _ZIP64_LOCATOR.size - _ZIP64_EOCD.size, (
            "the zip64 end record does not sit right before the locator")
        file.seek(locator[2])
        zip64 = _ZIP64_EOCD.unpack(file.read(_ZIP64_EOCD.size))
    assert zip64[0] == 0x06064B50
    assert zip64[1] == 44, "zip64 end record size field"
    assert zip64[2] >> 8 == 3 and zip64[3] == 45, "made by Unix, version needed 4.5"
    assert zip64[4:6] == (0, 0), "disk numbers"
    assert zip64[6] == zip64[7], "entries on this disk and in total"
    return EndRecords(zip64[6], zip64[8], zip64[9], zip64, locator, classic)


def read_central_directory(path: Path, ends: EndRecords) -> list[CentralRecord]:
    with path.open("rb") as file:
        file.seek(ends.directory_offset)
        blob = file.read(ends.directory_size)
    records = []
    position = 0
    while position < len(blob):
        fields = _CENTRAL.unpack_from(blob, position)
        assert fields[0] == 0x02014B50, f"central header signature at {position}"
        name_end = position + _CENTRAL.size + fields[10]
        extras_end = name_end + fields[11]
        records.append(CentralRecord(
            made_by=fields[1], needed=fields[2], flags=fields[3], method=fields[4],
            dos=(fields[5], fields[6]), crc=fields[7], size_fields=(fields[8], fields[9]),
            attributes=fields[15],
            offset_field=fields[16], name=blob[position + _CENTRAL.size : name_end],
            extras=_extras(blob[name_end:extras_end]),
        ))
        assert fields[12:15] == (0, 0, 0), "comment length, disk, internal attributes"
        position = extras_end + fields[12]
    assert position == len(blob)
    return records


def _dos(mtime: int) -> tuple[int, int]:
    """DOS time and date of a Unix time read as UTC (all test times lie in 1980..2107)."""
    moment = datetime.fromtimestamp(mtime, tz=UTC)
    time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    date = ((moment.year - 1980) << 9) | (moment.month << 5) | moment.day
    assert date != 0
    return time, date


def _zip64_values(record_extras: dict[int, bytes]) -> tuple[int, ...]:
    blob = record_extras.get(0x0001, b"")
    assert len(blob) % 8 == 0
    return struct.unpack(f"<{len(blob) // 8}Q", blob)


def check_records(path: Path, plan: Plan, expected: dict[str, tuple[int, int]]
                  ) -> tuple[EndRecords, list[CentralRecord]]:
    """Every record, field by field, against the rules of DESIGN.md; returns what it read.
    `expected` maps entry name -> (size, CRC-32)."""
    ends = read_end_records(path)
    count = len(plan.entries)
    assert ends.count == count
    assert (ends.directory_offset, ends.directory_size) == (
        plan.final.directory_offset, plan.final.directory_size)

    needs_zip64_end = (count >= 0xFFFF or ends.directory_offset >= _MAX32
                       or ends.directory_size >= _MAX32)
    assert (ends.zip64 is not None) is needs_zip64_end
    assert ends.classic[3:5] == (min(count, 0xFFFF),) * 2
    assert ends.classic[5] == min(ends.directory_size, _MAX32)
    assert ends.classic[6] == min(ends.directory_offset, _MAX32)

    records = read_central_directory(path, ends)
    assert len(records) == count
    with path.open("rb") as file:
        for entry, record in zip(plan.entries, records, strict=True):
            assert expected[entry.name][0] == entry.size
            check_central_record(entry, record, expected[entry.name][1])
            file.seek(entry.offset)
            check_local_header(entry, file.read(entry.header_size), record)
    return ends, records


def check_central_record(entry: Entry, record: CentralRecord, crc: int) -> None:
    big, far = entry.size >= _MAX32, entry.offset >= _MAX32
    assert record.name == entry.name.encode()
    assert record.method == 0 and record.crc == crc
    assert record.flags == (0 if entry.name.isascii() else 1 << 11), "only the UTF-8 flag"
    assert record.made_by >> 8 == 3, "made by Unix"
    assert record.needed == (45 if big or far else 20)
    assert record.made_by & 0xFF == record.needed
    assert record.dos == _dos(entry.mtime)
    assert record.size_fields == ((_MAX32, _MAX32) if big else (entry.size, entry.size))
    assert record.offset_field == (_MAX32 if far else entry.offset)
    assert _zip64_values(record.extras) == (
        (entry.size, entry.size) * big + (entry.offset,) * far), "zip64 extra"
    assert set(record.extras) == ({0x5455, 0x0001} if big or far else {0x5455})
    assert record.extras[0x5455] == struct.pack("<Bi", 1, entry.mtime)
    mode = 0o040755 if entry.is_dir else 0o100644
    assert record.attributes == (mode << 16) | (0x10 if entry.is_dir else 0)


def check_local_header(entry: Entry, blob: bytes, central: CentralRecord) -> None:
    fields = _LOCAL.unpack_from(blob)
    big = entry.size >= _MAX32
    assert fields[0] == 0x04034B50, f"local header of {entry.name!r}"
    assert fields[1] == (45 if big else 20)
    assert fields[2] == central.flags and not fields[2] & 0x08, "no data descriptor"
    assert fields[3] == 0, "STORE"
    assert fields[4:6] == central.dos
    assert fields[6] == central.crc
    assert (fields[7], fields[8]) == central.size_fields
    assert blob[_LOCAL.size : _LOCAL.size + fields[9]] == central.name
    extras = _extras(blob[_LOCAL.size + fields[9] :])
    assert _LOCAL.size + fields[9] + fields[10] == len(blob) == entry.header_size
    assert _zip64_values(extras) == (entry.size, entry.size) * big, "local zip64 extra"
    assert extras[0x5455] == central.extras[0x5455]


# --- (a) A small mixed archive --------------------------------------------------------------

SMALL_SIZES = {
    "a.txt": 5,
    "empty": 0,
    "folder/": 0,
    "folder/inner/": 0,
    "ü/日本語 🎉.bin": 3000,
    "with space/+%?#.txt": 1,
    "mid.bin": 6 * MiB,  # under twice the part minimum: an upload part holds it whole
    "min.bin": 5 * MiB,  # exactly the part minimum
    "big.bin": 12 * MiB + 7,  # a head in an upload part, the rest copied
    "twice.bin": 10 * MiB + 3,
    "z-last.txt": 100,
}

# S3's part sizes scaled down, so that objects of a few MiB make several copy parts each.
SCALED_DOWN = PlanSettings(
    min_part_size=64 * KiB, max_part_size=2 * MiB, upload_part_size=96 * KiB,
    max_upload_part_size=512 * KiB, copy_threshold=64 * KiB, batch_count=3)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("give_copy_crc", [True, False], ids=["copy-crc", "no-copy-crc"])
@pytest.mark.parametrize("plan_settings", [PlanSettings(), SCALED_DOWN],
                         ids=["s3-parts", "scaled-parts"])
def test_small_mixed_archive_is_read_by_every_reader_without_zip64(
    archive_path, java_classes, plan_settings, give_copy_crc, strategy
):
    plan_settings = replace(plan_settings, strategy=strategy)
    plan = build_plan(objects_of(SMALL_SIZES), "bkt", "", plan_settings)
    assert plan.copy_parts >= 2
    if strategy == ZERO_STREAM:
        assert plan.temps(), "boundaries between big objects need temporary objects"
    if plan_settings.min_part_size == SCALED_DOWN.min_part_size:
        ranges = Counter(p.source.entry for p in plan.all_parts()
                         if isinstance(p.source, SourceRange) and not p.source.filler)
        assert max(ranges.values()) >= 3

    expected = write_and_read(plan, archive_path, java_classes, give_copy_crc)
    assert set(expected) == set(SMALL_SIZES)
    ends, records = check_records(archive_path, plan, expected)

    assert ends.zip64 is None and ends.locator is None
    assert all(r.needed == 20 and 0x0001 not in r.extras for r in records)
    data = archive_path.read_bytes()
    assert b"\x50\x4b\x06\x06" not in data[plan.final.directory_offset :]
    assert b"\x50\x4b\x06\x07" not in data[plan.final.directory_offset :]


def test_archive_of_one_empty_entry_is_read_by_every_reader(archive_path, java_classes):
    plan = build_plan(objects_of({"only-empty": 0}), "bkt", "")
    expected = write_and_read(plan, archive_path, java_classes)
    check_records(archive_path, plan, expected)
    assert expected == {"only-empty": (0, 0)}


# --- (b) An entry of 4 GiB or more ----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_entry_over_4_gib_carries_zip64_sizes_in_local_and_central_headers(
    archive_path, java_classes
):
    huge = 4 * GiB + MiB
    plan = build_plan(objects_of({"a-before.txt": 100, "huge.bin": huge, "z-after.txt": 50}),
                      "bkt", "")
    expected = write_and_read(plan, archive_path, java_classes)
    ends, records = check_records(archive_path, plan, expected)

    before, big, after = records
    assert before.needed == 20 and 0x0001 not in before.extras
    assert big.needed == 45 and big.size_fields == (0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack("<QQ", big.extras[0x0001]) == (huge, huge)  # no offset: it fits
    with archive_path.open("rb") as file:
        file.seek(plan.entries[1].offset)
        local = file.read(plan.entries[1].header_size)
    assert struct.pack("<HHQQ", 0x0001, 16, huge, huge) in local

    # The entry after it lies past 4 GiB: its central header holds only the offset.
    assert plan.entries[2].offset > 0xFFFFFFFF
    assert struct.unpack("<Q", after.extras[0x0001]) == (plan.entries[2].offset,)
    assert after.size_fields == (50, 50) and after.offset_field == 0xFFFFFFFF

    assert ends.zip64 is not None and ends.zip64[1] == 44 and ends.locator[3] == 1
    assert ends.classic[3:7] == (3, 3, plan.final.directory_size, 0xFFFFFFFF)


# --- (c) More than 65,535 entries -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_more_than_65535_entries_use_the_zip64_end_record_only(archive_path, java_classes):
    sizes = {}
    for i in range(65_600):
        folder = f"d{i // 1000:02d}/" if i % 7 else f"ü{i // 5000}/"
        if i % 997 == 0:
            sizes[f"{folder}m{i:05d}/"] = 0
        else:
            sizes[f"{folder}f{i:05d}.txt"] = i % 41
    plan = build_plan(objects_of(sizes), "bkt", "")
    assert plan.final.directory_offset < 0xFFFFFFFF

    # zipdetails is left out here only: its check of each central header against every
    # earlier one takes over 20 minutes for 65,600 entries. It reads zip64 end records
    # in the 4 GiB cases, and the records here are checked field by field below.
    expected = write_and_read(plan, archive_path, java_classes, zipdetails=False)
    ends, records = check_records(archive_path, plan, expected)

    assert ends.zip64 is not None
    assert ends.zip64[1] == 44 and ends.zip64[6:8] == (65_600, 65_600)
    assert ends.locator[3] == 1
    # Only the count overflows: the classic size and offset keep their values.
    assert ends.classic[3:7] == (0xFFFF, 0xFFFF, plan.final.directory_size,
                                 plan.final.directory_offset)
    assert all(r.needed == 20 and 0x0001 not in r.extras for r in records)


# --- (d) Local headers past 4 GiB -----------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_local_headers_past_4_gib_put_only_the_offset_in_the_central_zip64_extra(
    archive_path, java_classes
):
    # The largest entry whose sizes still fit their fields, then small entries beyond 4 GiB.
    largest32 = 0xFFFFFFFE
    sizes = {"a.txt": 10, "b-largest32.bin": largest32, "c.txt": 20, "d-empty": 0,
             "e-folder/": 0, "f-ü.txt": 30}
    plan = build_plan(objects_of(sizes), "bkt", "")
    assert [e.offset > 0xFFFFFFFF for e in plan.entries] == [False, False] + [True] * 4

    expected = write_and_read(plan, archive_path, java_classes)
    ends, records = check_records(archive_path, plan, expected)

    assert records[1].needed == 20 and 0x0001 not in records[1].extras
    assert records[1].size_fields == (largest32, largest32)
    for entry, record in zip(plan.entries[2:], records[2:], strict=True):
        assert record.needed == 45 and record.offset_field == 0xFFFFFFFF
        assert record.extras[0x0001] == struct.pack("<Q", entry.offset)
        assert record.size_fields == (entry.size, entry.size)
        with archive_path.open("rb") as file:
            file.seek(entry.offset)
            local = _LOCAL.unpack(file.read(_LOCAL.size))
        assert local[1] == 20, "a small entry's local header needs no zip64, wherever it is"

    assert ends.zip64 is not None and ends.zip64[1] == 44 and ends.locator[3] == 1
    assert ends.classic[3:7] == (6, 6, plan.final.directory_size, 0xFFFFFFFF)
