"""Unit tests of the small pure pieces: CRC-32 arithmetic, entry names, ZIP record fields."""

import base64
import struct
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.crc import (
    RunningCrc,
    crc32_combine,
    crc32_from_s3,
    crc32_of_tail,
    crc32_to_s3,
)
from s3zip_dagster.core.errors import NamingError
from s3zip_dagster.core.limits import ZIP32_MAX_ENTRIES, ZIP32_MAX_SIZE
from s3zip_dagster.core.names import check_names, matches_glob, selected, unsafe_reason

# --- CRC-32 ---------------------------------------------------------------------------------

_blobs = st.binary(max_size=600)


@settings(max_examples=300, deadline=None)
@given(_blobs, _blobs)
def test_crc32_combine_equals_zlib_crc_of_the_concatenation(a, b):
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=300, deadline=None)
@given(_blobs, _blobs)
def test_crc32_of_tail_recovers_the_crc_of_the_second_range(a, b):
    assert crc32_of_tail(zlib.crc32(a), zlib.crc32(a + b), len(b)) == zlib.crc32(b)


@settings(max_examples=100, deadline=None)
@given(st.lists(_blobs, max_size=8))
def test_running_crc_of_ranges_equals_zlib_crc_of_their_concatenation(blobs):
    by_crc, by_bytes = RunningCrc(), RunningCrc()
    for blob in blobs:
        by_crc.add_crc(zlib.crc32(blob), len(blob))
        by_bytes.add_bytes(blob)
    whole = b"".join(blobs)
    assert (by_crc.value, by_crc.length) == (zlib.crc32(whole), len(whole))
    assert (by_bytes.value, by_bytes.length) == (zlib.crc32(whole), len(whole))


def test_crc32_combine_handles_ranges_of_several_gibibytes():
    # 3 GiB of zeros: zlib reads them all, crc32_combine joins three 1 GiB CRCs.
    chunk = bytes(1 << 24)
    gib = 0
    for _ in range(64):
        gib = zlib.crc32(chunk, gib)
    running = zlib.crc32(b"head")
    for _ in range(3 * 64):
        running = zlib.crc32(chunk, running)

    three = crc32_combine(crc32_combine(gib, gib, 1 << 30), gib, 1 << 30)
    assert crc32_combine(zlib.crc32(b"head"), three, 3 << 30) == running


def test_crc32_combine_rejects_a_negative_length():
    with pytest.raises(ValueError):
        crc32_combine(0, 0, -1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0xFFFFFFFF))
def test_crc32_survives_the_s3_base64_round_trip(crc):
    text = crc32_to_s3(crc)
    assert base64.b64decode(text) == crc.to_bytes(4, "big")
    assert crc32_from_s3(text) == crc


def test_crc32_to_s3_matches_the_form_s3_answers():
    assert crc32_to_s3(zlib.crc32(b"hello")) == "NhCmhg=="


@pytest.mark.parametrize("value", ["NhCmhg==-2", "AAAAAA==-10000"])
def test_composite_s3_checksum_is_rejected(value):
    with pytest.raises(ValueError, match="composite"):
        crc32_from_s3(value)


@pytest.mark.parametrize("value", ["AAAAAAAA", "AAA=", "not base64!"])
def test_s3_checksum_that_is_not_four_bytes_is_rejected(value):
    with pytest.raises(ValueError):
        crc32_from_s3(value)


# --- Names ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "size", "reason"),
    [
        ("a/../b", 1, "'..' segment"),
        ("..", 1, "'..' segment"),
        ("../up", 1, "'..' segment"),
        ("a/..", 1, "'..' segment"),
        ("a/./b", 1, "'.' segment"),
        ("./a", 1, "'.' segment"),
        ("a/../", 0, "'..' segment"),
        ("/etc/passwd", 1, "starts with '/'"),
        ("/", 0, "starts with '/'"),
        ("a\\b", 1, "backslash"),
        ("..\\evil", 1, "backslash"),
        ("C:/Windows/x", 1, "drive letter"),
        ("c:x", 1, "drive letter"),
        ("a//b", 1, "empty segment"),
        ("a//", 0, "empty segment"),
        ("folder/", 3, "holds 3 bytes"),
        ("", 0, "empty"),
        ("a\x00b", 1, "NUL"),
    ],
)
def test_unsafe_names_are_reported_with_their_reason(name, size, reason):
    found = unsafe_reason(name, size)
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("a.txt", 5),
        ("folder/", 0),
        ("a/b/c.bin", 0),
        ("..a/b..", 1),  # dots inside a segment are only a name
        ("a/.hidden", 1),
        ("ü/日本語/🎉.txt", 1),
        ("with space/+%?#.txt", 1),
        ("ab:c", 1),  # a colon after more than one letter is no drive
    ],
)
def test_safe_names_have_no_reason(name, size):
    assert unsafe_reason(name, size) is None


def test_check_names_names_both_keys_of_a_collision():
    keys = ["p/x.txt", "q/x.txt", "p/y.txt"]
    names = ["x.txt", "x.txt", "y.txt"]
    with pytest.raises(NamingError) as raised:
        check_names(keys, names, [1, 2, 3], "bkt")
    message = str(raised.value)
    assert "s3://bkt/p/x.txt" in message
    assert "s3://bkt/q/x.txt" in message
    assert "'x.txt'" in message
    assert "y.txt" not in message


def test_check_names_lists_every_unsafe_key_and_counts_beyond_twenty():
    keys = [f"bad/../{i}" for i in range(25)]
    with pytest.raises(NamingError) as raised:
        check_names(keys, keys, [1] * 25, "bkt")
    message = str(raised.value)
    assert message.startswith("25 source key(s)")
    assert "s3://bkt/bad/../0" in message
    assert "and 5 more" in message


def test_check_names_accepts_unique_safe_names():
    check_names(["a", "b/", "b/c"], ["a", "b/", "b/c"], [1, 0, 2], "bkt")


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("a.txt", "*.txt", True),
        ("d/a.txt", "*.txt", False),  # `*` stays within one folder
        ("d/a.txt", "*/*.txt", True),
        ("d/e/a.txt", "**/*.txt", True),
        ("a.txt", "**/*.txt", True),  # `**/` may match no folder at all
        ("d/e/a.txt", "d/**", True),
        ("d", "d/**", False),
        ("x/d/e", "d/**", False),
        ("d/e/f.bin", "**", True),
        ("a1.txt", "a?.txt", True),
        ("a12.txt", "a?.txt", False),
        ("a/.txt", "a?.txt", False),  # `?` matches no '/'
        ("a1.txt", "a[0-9].txt", True),
        ("ab.txt", "a[0-9].txt", False),
        ("ab.txt", "a[!0-9].txt", True),
        ("a5.txt", "a[!0-9].txt", False),
        ("a.b", "a.b", True),
        ("axb", "a.b", False),  # regex characters are literal
        ("a+b(1).txt", "a+b(1).txt", True),
        ("ü/日本.txt", "ü/*.txt", True),
        ("logs/2024/x.log", "logs/**/*.log", True),
        ("logs/x.log", "logs/**/*.log", True),
    ],
)
def test_glob_matching(path, pattern, expected):
    assert matches_glob(path, pattern) is expected


def test_selected_needs_an_include_match_and_no_exclude_match():
    assert selected("a/b.txt", [], [])
    assert selected("a/b.txt", ["**/*.txt"], [])
    assert not selected("a/b.bin", ["**/*.txt"], [])
    assert not selected("a/b.txt", ["**/*.txt"], ["a/**"])
    assert not selected("a/b.txt", [], ["*/b.txt"])


# --- DOS date and time ----------------------------------------------------------------------

def _unix(*fields) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())


def _decode_dos(dos_time: int, dos_date: int) -> tuple[int, ...]:
    return (
        (dos_date >> 9) + 1980, (dos_date >> 5) & 0xF, dos_date & 0x1F,
        dos_time >> 11, (dos_time >> 5) & 0x3F, (dos_time & 0x1F) * 2,
    )


def test_dos_datetime_reads_the_time_as_utc():
    assert _decode_dos(*zipformat.dos_datetime(_unix(2024, 2, 29, 23, 59, 59))) == (
        2024, 2, 29, 23, 59, 58)  # DOS time counts seconds in twos
    assert _decode_dos(*zipformat.dos_datetime(_unix(1980, 1, 1))) == (1980, 1, 1, 0, 0, 0)
    assert _decode_dos(*zipformat.dos_datetime(_unix(2107, 12, 31, 23, 59, 58))) == (
        2107, 12, 31, 23, 59, 58)


@pytest.mark.parametrize("mtime", [0, -1, _unix(1979, 12, 31, 23, 59, 59), -(2**31), -(2**40)])
def test_dos_datetime_clamps_times_before_1980_to_1980_01_01(mtime):
    assert zipformat.dos_datetime(mtime) == (0, (0 << 9) | (1 << 5) | 1)


@pytest.mark.parametrize("mtime", [_unix(2108, 1, 1), 2**33, 2**40, 2**62])
def test_dos_datetime_clamps_times_after_2107_to_2107_12_31(mtime):
    assert _decode_dos(*zipformat.dos_datetime(mtime)) == (2107, 12, 31, 23, 59, 58)


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**63), 2**63))
def test_dos_datetime_of_any_time_is_a_valid_dos_date(mtime):
    year, month, day, hour, minute, second = _decode_dos(*zipformat.dos_datetime(mtime))
    assert 1980 <= year <= 2107 and 1 <= month <= 12 and 1 <= day <= 31
    assert hour < 24 and minute < 60 and second < 60


# --- ZIP64 decisions, field by field --------------------------------------------------------

def _extras(blob: bytes) -> dict[int, bytes]:
    fields = {}
    while blob:
        field_id, length = struct.unpack_from("<HH", blob)
        assert field_id not in fields, f"extra field {field_id:#x} written twice"
        fields[field_id] = blob[4 : 4 + length]
        assert len(fields[field_id]) == length
        blob = blob[4 + length :]
    return fields


def _local(size: int) -> tuple[tuple, dict[int, bytes]]:
    name = b"n.bin"
    record = zipformat.local_header(name, size, 0x12345678, _unix(2020, 1, 1))
    fixed = zipformat.LOCAL_HEADER.unpack_from(record)
    assert len(record) == zipformat.local_header_size(name, size)
    assert record[30 : 30 + fixed[9]] == name
    return fixed, _extras(record[30 + fixed[9] :])


def _central(size: int, offset: int) -> tuple[tuple, dict[int, bytes]]:
    name = b"n.bin"
    record = zipformat.central_header(name, size, 0x12345678, _unix(2020, 1, 1), offset, False)
    fixed = zipformat.CENTRAL_HEADER.unpack_from(record)
    assert len(record) == zipformat.central_header_size(name, size, offset)
    assert record[46 : 46 + fixed[10]] == name
    return fixed, _extras(record[46 + fixed[10] :])


def test_size_just_under_0xffffffff_needs_no_zip64():
    size = ZIP32_MAX_SIZE - 1
    assert not zipformat.needs_zip64_size(size)
    fixed, extras = _local(size)
    assert fixed[1] == zipformat.VERSION_STORE
    assert (fixed[7], fixed[8]) == (size, size)
    assert set(extras) == {zipformat.TIMESTAMP_EXTRA_ID}

    fixed, extras = _central(size, 0)
    assert fixed[2] == zipformat.VERSION_STORE
    assert (fixed[8], fixed[9], fixed[16]) == (size, size, 0)
    assert set(extras) == {zipformat.TIMESTAMP_EXTRA_ID}


def test_size_of_0xffffffff_carries_both_sizes_in_both_headers():
    size = ZIP32_MAX_SIZE
    assert zipformat.needs_zip64_size(size)
    fixed, extras = _local(size)
    assert fixed[1] == zipformat.VERSION_ZIP64
    assert (fixed[7], fixed[8]) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack("<QQ", extras[zipformat.ZIP64_EXTRA_ID]) == (size, size)

    fixed, extras = _central(size, 100)
    assert fixed[2] == zipformat.VERSION_ZIP64
    assert (fixed[8], fixed[9], fixed[16]) == (0xFFFFFFFF, 0xFFFFFFFF, 100)
    assert struct.unpack("<QQ", extras[zipformat.ZIP64_EXTRA_ID]) == (size, size)


def test_offset_just_under_0xffffffff_needs_no_zip64():
    fixed, extras = _central(10, ZIP32_MAX_SIZE - 1)
    assert fixed[2] == zipformat.VERSION_STORE
    assert fixed[16] == ZIP32_MAX_SIZE - 1
    assert zipformat.ZIP64_EXTRA_ID not in extras


def test_offset_of_0xffffffff_alone_goes_into_the_central_zip64_extra():
    fixed, extras = _central(10, ZIP32_MAX_SIZE)
    assert fixed[2] == zipformat.VERSION_ZIP64
    assert (fixed[8], fixed[9], fixed[16]) == (10, 10, 0xFFFFFFFF)
    assert struct.unpack("<Q", extras[zipformat.ZIP64_EXTRA_ID]) == (ZIP32_MAX_SIZE,)

    # The local header of a small entry never needs zip64, wherever it lies.
    fixed, extras = _local(10)
    assert fixed[1] == zipformat.VERSION_STORE
    assert zipformat.ZIP64_EXTRA_ID not in extras


def test_central_zip64_extra_holds_sizes_then_offset_in_spec_order():
    size, offset = 5 << 30, 6 << 30
    fixed, extras = _central(size, offset)
    assert (fixed[8], fixed[9], fixed[16]) == (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)
    assert struct.unpack("<QQQ", extras[zipformat.ZIP64_EXTRA_ID]) == (size, size, offset)


def test_timestamp_extra_holds_the_exact_mtime():
    mtime = _unix(2021, 7, 4, 12, 0, 1)
    _, extras = _local(10)
    flags, stamp = struct.unpack("<Bi", extras[zipformat.TIMESTAMP_EXTRA_ID])
    assert flags == 1 and stamp == _unix(2020, 1, 1)
    record = zipformat.central_header(b"x", 1, 0, mtime, 0, False)
    assert struct.unpack("<Bi", _extras(record[47:])[zipformat.TIMESTAMP_EXTRA_ID]) == (1, mtime)


def test_entry_count_65534_keeps_the_classic_end_record():
    count = ZIP32_MAX_ENTRIES - 1
    assert not zipformat.needs_zip64_end(count, 1000, 1000)
    records = zipformat.end_records(count, 1000, 1000)
    assert len(records) == zipformat.END.size == zipformat.end_records_size(count, 1000, 1000)
    fields = zipformat.END.unpack(records)
    assert fields[0] == zipformat.END_SIGNATURE
    assert fields[3:7] == (count, count, 1000, 1000)


def test_entry_count_65535_needs_the_zip64_end_record():
    count = ZIP32_MAX_ENTRIES
    assert zipformat.needs_zip64_end(count, 1000, 1000)
    records = zipformat.end_records(count, 1000, 1000)
    assert len(records) == zipformat.end_records_size(count, 1000, 1000) == 56 + 20 + 22
    zip64 = zipformat.ZIP64_END.unpack_from(records)
    assert zip64[0] == zipformat.ZIP64_END_SIGNATURE
    assert zip64[1] == 44
    assert zip64[3] == zipformat.VERSION_ZIP64
    assert zip64[6:] == (count, count, 1000, 1000)
    locator = zipformat.ZIP64_LOCATOR.unpack_from(records, 56)
    assert locator == (zipformat.ZIP64_LOCATOR_SIGNATURE, 0, 2000, 1)
    end = zipformat.END.unpack_from(records, 76)
    assert end[3:7] == (0xFFFF, 0xFFFF, 1000, 1000)  # only the overflowing fields are maxed


@pytest.mark.parametrize(
    ("offset", "size", "zip64"),
    [
        (ZIP32_MAX_SIZE - 1, 10, False),
        (ZIP32_MAX_SIZE, 10, True),
        (10, ZIP32_MAX_SIZE - 1, False),
        (10, ZIP32_MAX_SIZE, True),
    ],
)
def test_directory_offset_and_size_decide_the_zip64_end_record(offset, size, zip64):
    assert zipformat.needs_zip64_end(3, offset, size) is zip64
    records = zipformat.end_records(3, offset, size)
    assert len(records) == zipformat.end_records_size(3, offset, size)
    end = zipformat.END.unpack_from(records, len(records) - 22)
    assert end[3:5] == (3, 3)
    assert end[5] == min(size, 0xFFFFFFFF)
    assert end[6] == min(offset, 0xFFFFFFFF)
    if zip64:
        assert zipformat.ZIP64_END.unpack_from(records)[6:] == (3, 3, size, offset)


def test_non_ascii_names_set_the_utf8_flag_and_ascii_names_do_not():
    ascii_header = zipformat.local_header(b"plain.txt", 1, 0, 0)
    utf8_header = zipformat.local_header("ü.txt".encode(), 1, 0, 0)
    assert zipformat.LOCAL_HEADER.unpack_from(ascii_header)[2] == 0
    assert zipformat.LOCAL_HEADER.unpack_from(utf8_header)[2] == 1 << 11


def test_directory_entries_are_0755_and_files_0644_made_by_unix():
    directory = zipformat.CENTRAL_HEADER.unpack_from(
        zipformat.central_header(b"d/", 0, 0, 0, 0, True))
    regular = zipformat.CENTRAL_HEADER.unpack_from(
        zipformat.central_header(b"f", 1, 0, 0, 0, False))
    assert directory[1] >> 8 == 3 and regular[1] >> 8 == 3
    assert directory[15] == (0o040755 << 16) | 0x10
    assert regular[15] == 0o100644 << 16
