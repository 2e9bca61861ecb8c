"""ZIP records (APPNOTE 6.3.x) for STORE entries: their sizes and their bytes.

Every record's size depends only on the name, the entry's size and its offset, never on
the CRC, so the whole layout of an archive is known before any data moves. ZIP64 fields
are written only where a value does not fit its classic field.
"""

import struct
from datetime import UTC, datetime

from .limits import ZIP32_MAX_ENTRIES, ZIP32_MAX_SIZE

# Local file header, APPNOTE 4.3.7.
LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
LOCAL_HEADER_SIGNATURE = 0x04034B50

# Central directory file header, APPNOTE 4.3.12.
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
CENTRAL_HEADER_SIGNATURE = 0x02014B50

# Zip64 end of central directory record and its locator, APPNOTE 4.3.14 and 4.3.15.
ZIP64_END = struct.Struct("<IQHHIIQQQQ")
ZIP64_END_SIGNATURE = 0x06064B50
ZIP64_END_RECORD_SIZE = ZIP64_END.size - 12  # the size field excludes signature and itself
ZIP64_LOCATOR = struct.Struct("<IIQI")
ZIP64_LOCATOR_SIGNATURE = 0x07064B50

# End of central directory record, APPNOTE 4.3.16.
END = struct.Struct("<IHHHHIIH")
END_SIGNATURE = 0x06054B50

# Extra fields: zip64 (APPNOTE 4.5.3) and Info-ZIP extended timestamp (APPNOTE 4.6 list).
EXTRA_HEADER = struct.Struct("<HH")
ZIP64_EXTRA_ID = 0x0001
TIMESTAMP_EXTRA_ID = 0x5455
TIMESTAMP_EXTRA = struct.Struct("<HHBi")  # id, size 5, flags (bit 0: mtime), mtime
TIMESTAMP_FLAG_MTIME = 0x01

METHOD_STORE = 0
FLAG_UTF8 = 1 << 11  # general purpose bit 11: name is UTF-8
VERSION_STORE = 20  # 2.0: plain stored entries and directories
VERSION_ZIP64 = 45  # 4.5: zip64 extensions
MADE_BY_UNIX = 3 << 8  # upper byte of "version made by": 3 = UNIX
FILE_MODE = 0o100644  # regular file, rw-r--r--
DIR_MODE = 0o040755  # directory, rwxr-xr-x
MSDOS_DIR_ATTRIBUTE = 0x10

DOS_EPOCH_YEAR = 1980  # DOS dates count years from 1980 in 7 bits
DOS_LAST_YEAR = 2107
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def needs_zip64_size(size: int) -> bool:
    """An entry of this size carries the zip64 extra (both sizes) in both headers."""
    return size >= ZIP32_MAX_SIZE


def _timestamp_extra(mtime: int) -> bytes:
    clamped = min(max(mtime, INT32_MIN), INT32_MAX)
    return TIMESTAMP_EXTRA.pack(TIMESTAMP_EXTRA_ID, 5, TIMESTAMP_FLAG_MTIME, clamped)


_DOS_FIRST_MOMENT = int(datetime(DOS_EPOCH_YEAR, 1, 1, tzinfo=UTC).timestamp())
_DOS_LAST_MOMENT = int(datetime(DOS_LAST_YEAR, 12, 31, 23, 59, 58, tzinfo=UTC).timestamp())


def dos_datetime(mtime: int) -> tuple[int, int]:
    """Return (DOS time, DOS date) of a Unix time, read as UTC and clamped to 1980..2107."""
    # Clamp before converting: datetime cannot hold every integer time (years 1..9999 only).
    clamped = min(max(mtime, _DOS_FIRST_MOMENT), _DOS_LAST_MOMENT)
    moment = datetime.fromtimestamp(clamped, tz=UTC)
    dos_time = (moment.hour << 11) | (moment.minute << 5) | (moment.second // 2)
    dos_date = ((moment.year - DOS_EPOCH_YEAR) << 9) | (moment.month << 5) | moment.day
    return dos_time, dos_date


def _flags(name: bytes) -> int:
    return 0 if name.isascii() else FLAG_UTF8


def local_header_size(name: bytes, size: int) -> int:
    """Bytes of the local header of an entry: fixed part, name, extras."""
    zip64 = EXTRA_HEADER.size + 16 if needs_zip64_size(size) else 0
    return LOCAL_HEADER.size + len(name) + TIMESTAMP_EXTRA.size + zip64


def local_header(name: bytes, size: int, crc: int, mtime: int) -> bytes:
    """The local header of a STORE entry, with CRC and sizes (no data descriptor)."""
    extra = _timestamp_extra(mtime)
    version = VERSION_STORE
    size_field = size
    if needs_zip64_size(size):
        extra += EXTRA_HEADER.pack(ZIP64_EXTRA_ID, 16) + struct.pack("<QQ", size, size)
        version = VERSION_ZIP64
        size_field = ZIP32_MAX_SIZE
    dos_time, dos_date = dos_datetime(mtime)
    fixed = LOCAL_HEADER.pack(
        LOCAL_HEADER_SIGNATURE, version, _flags(name), METHOD_STORE, dos_time, dos_date,
        crc, size_field, size_field, len(name), len(extra),
    )
    return fixed + name + extra


def _central_zip64_values(size: int, offset: int) -> list[int]:
    """The zip64 extra's values, in spec order, for the fields that overflow."""
    values = []
    if needs_zip64_size(size):
        values += [size, size]  # original size, then compressed size
    if offset >= ZIP32_MAX_SIZE:
        values.append(offset)
    return values


def central_header_size(name: bytes, size: int, offset: int) -> int:
    """Bytes of the central directory header of an entry."""
    values = _central_zip64_values(size, offset)
    zip64 = EXTRA_HEADER.size + 8 * len(values) if values else 0
    return CENTRAL_HEADER.size + len(name) + TIMESTAMP_EXTRA.size + zip64


def central_header(
    name: bytes, size: int, crc: int, mtime: int, offset: int, is_dir: bool
) -> bytes:
    """The central directory header of a STORE entry whose local header is at `offset`."""
    extra = _timestamp_extra(mtime)
    values = _central_zip64_values(size, offset)
    if values:
        extra += EXTRA_HEADER.pack(ZIP64_EXTRA_ID, 8 * len(values))
        extra += struct.pack(f"<{len(values)}Q", *values)
    version = VERSION_ZIP64 if values else VERSION_STORE
    size_field = ZIP32_MAX_SIZE if needs_zip64_size(size) else size
    offset_field = min(offset, ZIP32_MAX_SIZE)
    mode = DIR_MODE if is_dir else FILE_MODE
    attributes = (mode << 16) | (MSDOS_DIR_ATTRIBUTE if is_dir else 0)
    dos_time, dos_date = dos_datetime(mtime)
    fixed = CENTRAL_HEADER.pack(
        CENTRAL_HEADER_SIGNATURE, MADE_BY_UNIX | version, version, _flags(name),
        METHOD_STORE, dos_time, dos_date, crc, size_field, size_field, len(name),
        len(extra), 0, 0, 0, attributes, offset_field,
    )
    return fixed + name + extra


def needs_zip64_end(entry_count: int, directory_offset: int, directory_size: int) -> bool:
    """The archive needs the zip64 end record and locator."""
    return (
        entry_count >= ZIP32_MAX_ENTRIES
        or directory_offset >= ZIP32_MAX_SIZE
        or directory_size >= ZIP32_MAX_SIZE
    )


def end_records_size(entry_count: int, directory_offset: int, directory_size: int) -> int:
    """Bytes after the central directory: [zip64 end record, locator,] end record."""
    size = END.size
    if needs_zip64_end(entry_count, directory_offset, directory_size):
        size += ZIP64_END.size + ZIP64_LOCATOR.size
    return size


def end_records(entry_count: int, directory_offset: int, directory_size: int) -> bytes:
    """The records that close the archive, after a central directory of the given extent."""
    records = b""
    if needs_zip64_end(entry_count, directory_offset, directory_size):
        zip64_end_offset = directory_offset + directory_size
        records += ZIP64_END.pack(
            ZIP64_END_SIGNATURE, ZIP64_END_RECORD_SIZE, MADE_BY_UNIX | VERSION_ZIP64,
            VERSION_ZIP64, 0, 0, entry_count, entry_count, directory_size, directory_offset,
        )
        records += ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIGNATURE, 0, zip64_end_offset, 1)
    count_field = min(entry_count, ZIP32_MAX_ENTRIES)
    records += END.pack(
        END_SIGNATURE, 0, 0, count_field, count_field,
        min(directory_size, ZIP32_MAX_SIZE), min(directory_offset, ZIP32_MAX_SIZE), 0,
    )
    return records
