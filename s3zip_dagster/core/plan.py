"""The plan: where every entry, header and part of the archive lies, and which batch makes it.

A STORE archive's layout is known before any data moves, so the plan fixes every offset:
entries in key order, each a local header then its data, then the central directory and
the end records. The archive is cut into parts of one S3 multipart upload:

- a copy part is a byte range of one source object, copied by S3 (UploadPartCopy);
- an upload part is bytes a worker composes: local headers, the data of small objects and,
  where a part must reach S3's 5 MiB minimum before a copy, the head of a big object;
- the final part holds the last small entries, the central directory and the end records.

An entry's local header needs its CRC-32, which for a copied object comes back from the
copy. So the upload part that holds a big object's local header goes together with that
object's copy parts: that is a unit. Units are grouped into batches; a batch depends on no
other batch, and only the final part waits for all of them.
"""

import logging
import math
from dataclasses import dataclass, field

from . import zipformat
from .errors import PlanError, SourceError
from .limits import (
    MAX_NAME_BYTES,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ZIP32_MAX_SIZE,
    MiB,
)
from .names import archive_name, check_names

log = logging.getLogger(__name__)

ARCHIVED_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})  # S3: restore before GET

# Relative cost of work in a batch, used only to balance batches: a byte copied by S3 costs
# far less of a worker's time than a byte it downloads and uploads, and each request has a
# fixed latency.
_COST_PER_STREAMED_BYTE = 1.0
_COST_PER_COPIED_BYTE = 1.0 / 16
_COST_PER_REQUEST = 256 * 1024

# The longest local header: a name of 0xFFFF bytes, the timestamp and the zip64 extras.
_MAX_LOCAL_HEADER_SIZE = zipformat.local_header_size(b"n" * MAX_NAME_BYTES, ZIP32_MAX_SIZE)


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object of the source listing."""

    key: str
    size: int
    etag: str
    mtime: int  # LastModified as Unix seconds (UTC)
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class PlanSettings:
    """Every threshold the planner uses, in one place."""

    min_part_size: int = MIN_PART_SIZE
    max_part_size: int = MAX_PART_SIZE
    max_parts: int = MAX_PARTS
    max_archive_size: int = MAX_OBJECT_SIZE
    upload_part_size: int = 8 * MiB  # an upload part is sent once it reaches this size
    max_upload_part_size: int = 256 * MiB  # how far upload parts may grow to fit max_parts
    copy_threshold: int = MIN_PART_SIZE  # objects of this size or more are copied by S3
    batch_count: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.min_part_size <= self.upload_part_size <= self.max_upload_part_size:
            raise PlanError(
                "settings need 0 < min_part_size <= upload_part_size <= max_upload_part_size; "
                f"got {self.min_part_size}, {self.upload_part_size}, {self.max_upload_part_size}"
            )
        if (self.max_upload_part_size + self.copy_threshold + _MAX_LOCAL_HEADER_SIZE
                > self.max_part_size):
            raise PlanError(
                "max_upload_part_size + copy_threshold must stay under max_part_size by "
                f"{_MAX_LOCAL_HEADER_SIZE} B (the longest local header); got "
                f"{self.max_upload_part_size} + {self.copy_threshold} and {self.max_part_size}")
        if self.copy_threshold < self.min_part_size:
            raise PlanError("copy_threshold must be at least min_part_size")
        if self.batch_count < 1 or self.max_parts < 2:
            raise PlanError("batch_count must be >= 1 and max_parts >= 2")

    @property
    def max_copy_threshold(self) -> int:
        """How far the copy threshold may grow to fit max_parts. An upload part holds up to
        upload_part_size, then one more local header and an object under the threshold: it
        must still fit in max_part_size."""
        return min(self.max_upload_part_size,
                   self.max_part_size - self.max_upload_part_size - _MAX_LOCAL_HEADER_SIZE)


@dataclass(frozen=True)
class NamingOptions:
    """How source keys become entry names."""

    strip_prefix: bool = True
    name_prefix: str = ""


@dataclass(slots=True)
class Entry:
    """One entry of the archive: its source object and where its local header lies."""

    index: int
    key: str
    name: str
    size: int
    etag: str
    mtime: int
    offset: int  # of the local header in the archive
    header_size: int

    @property
    def name_bytes(self) -> bytes:
        return self.name.encode("utf-8")

    @property
    def data_offset(self) -> int:
        return self.offset + self.header_size

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.size == 0


@dataclass(frozen=True, slots=True)
class HeaderPiece:
    """The local header of entry `entry`, inside an upload part."""

    entry: int


@dataclass(frozen=True, slots=True)
class DataPiece:
    """Bytes [start, end) of entry `entry`'s data, read by a worker into an upload part."""

    entry: int
    start: int
    end: int


Piece = HeaderPiece | DataPiece


@dataclass(frozen=True, slots=True)
class CopyPart:
    """Bytes [start, end) of entry `entry`'s source object, copied by S3."""

    number: int
    offset: int
    entry: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class UploadPart:
    """Bytes a worker composes from pieces and uploads."""

    number: int
    offset: int
    size: int
    pieces: tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class Unit:
    """An upload part and the copy parts of the entry whose local header it ends with."""

    upload: UploadPart
    copies: tuple[CopyPart, ...]


@dataclass
class Batch:
    """Units one worker completes on its own; it carries every entry it touches."""

    index: int
    units: list[Unit]
    entries: dict[int, Entry]

    @property
    def part_count(self) -> int:
        return sum(1 + len(unit.copies) for unit in self.units)


@dataclass(frozen=True)
class FinalPart:
    """The last part: trailing small entries, the central directory and the end records."""

    number: int
    offset: int
    pieces: tuple[Piece, ...]
    directory_offset: int
    directory_size: int
    end_size: int

    @property
    def size(self) -> int:
        return self.directory_offset + self.directory_size + self.end_size - self.offset


@dataclass
class Plan:
    """The full layout of one archive."""

    source_bucket: str
    source_prefix: str
    entries: list[Entry]
    batches: list[Batch]
    final: FinalPart
    settings: PlanSettings
    skipped_keys: list[str] = field(default_factory=list)

    @property
    def archive_size(self) -> int:
        return self.final.offset + self.final.size

    @property
    def part_count(self) -> int:
        return self.final.number

    @property
    def copy_parts(self) -> int:
        return sum(len(unit.copies) for batch in self.batches for unit in batch.units)

    @property
    def upload_parts(self) -> int:
        return self.part_count - self.copy_parts  # the final part is uploaded too

    @property
    def copied_bytes(self) -> int:
        return sum(c.size for batch in self.batches for unit in batch.units for c in unit.copies)

    @property
    def read_bytes(self) -> int:
        """Bytes of source data workers download (GET) to compose upload parts."""
        pieces = [p for b in self.batches for u in b.units for p in u.upload.pieces]
        pieces += self.final.pieces
        return sum(p.end - p.start for p in pieces if isinstance(p, DataPiece))

    @property
    def uploaded_bytes(self) -> int:
        """Bytes workers send to S3 in upload parts, the final part included."""
        return self.archive_size - self.copied_bytes

    @property
    def zip64(self) -> bool:
        return zipformat.needs_zip64_end(
            len(self.entries), self.final.directory_offset, self.final.directory_size
        ) or any(
            zipformat.needs_zip64_size(e.size) or e.offset >= zipformat.ZIP32_MAX_SIZE
            for e in self.entries
        )


def select_entries(
    objects: list[SourceObject],
    bucket: str,
    prefix: str,
    naming: NamingOptions,
    exclude_keys: frozenset[str] = frozenset(),
) -> tuple[list[tuple[SourceObject, str]], list[str]]:
    """Pair each archived object with its entry name, in key order; return also the keys
    left out (the archive itself, the source prefix's own folder marker).

    Raises SourceError for archived storage classes and NamingError for bad names, before
    anything is written.
    """
    chosen: list[tuple[SourceObject, str]] = []
    skipped: list[str] = []
    for obj in sorted(objects, key=lambda o: o.key):
        name = archive_name(obj.key, prefix, naming.strip_prefix, naming.name_prefix)
        if obj.key in exclude_keys or (name == "" and obj.size == 0):
            skipped.append(obj.key)
            continue
        chosen.append((obj, name))

    archived = [o.key for o, _ in chosen if o.storage_class in ARCHIVED_STORAGE_CLASSES]
    if archived:
        listed = "\n  ".join(f"s3://{bucket}/{k}" for k in archived[:20])
        raise SourceError(
            f"{len(archived)} object(s) are in GLACIER or DEEP_ARCHIVE storage and cannot be "
            f"read or copied until restored:\n  {listed}\n"
            "Restore them (S3 RestoreObject) and copy them back to a readable class, or "
            "leave them out with `exclude` patterns. Nothing was written."
        )

    if not chosen:
        raise SourceError(
            f"no objects to archive under s3://{bucket}/{prefix} "
            "(after include/exclude patterns). Check the bucket, prefix and patterns."
        )

    check_names([o.key for o, _ in chosen], [n for _, n in chosen], [o.size for o, _ in chosen],
                bucket)
    return chosen, skipped


def lay_out_entries(chosen: list[tuple[SourceObject, str]]) -> list[Entry]:
    """Give each entry its offset: local header, then data, one after another."""
    entries = []
    offset = 0
    for index, (obj, name) in enumerate(chosen):
        header_size = zipformat.local_header_size(name.encode("utf-8"), obj.size)
        entries.append(Entry(index, obj.key, name, obj.size, obj.etag, obj.mtime, offset,
                             header_size))
        offset += header_size + obj.size
    return entries


def _copy_ranges(start: int, end: int, max_part_size: int) -> list[tuple[int, int]]:
    """Split [start, end) into the fewest ranges of at most max_part_size, sizes within 1 B
    of each other so that none falls under the minimum when the whole is over it."""
    count = math.ceil((end - start) / max_part_size)
    base, extra = divmod(end - start, count)
    ranges = []
    for i in range(count):
        size = base + (1 if i < extra else 0)
        ranges.append((start, start + size))
        start += size
    return ranges


@dataclass
class _Layout:
    units: list[Unit]
    trailing: tuple[Piece, ...]
    trailing_offset: int
    part_count: int


def _cut_parts(entries: list[Entry], settings: PlanSettings, upload_part_size: int,
               copy_threshold: int) -> _Layout:
    """Cut the entries' bytes into parts: one pass, in archive order."""
    units: list[Unit] = []
    pieces: list[Piece] = []
    pending = 0  # bytes in `pieces`
    part_offset = 0  # archive offset where `pieces` begin
    number = 1

    def emit_upload() -> UploadPart:
        nonlocal pieces, pending, part_offset, number
        part = UploadPart(number, part_offset, pending, tuple(pieces))
        number += 1
        part_offset += pending
        pieces, pending = [], 0
        return part

    for entry in entries:
        pieces.append(HeaderPiece(entry.index))
        pending += entry.header_size
        head = max(0, settings.min_part_size - pending)
        copyable = entry.size >= copy_threshold and entry.size - head >= settings.min_part_size

        if not copyable:
            if entry.size:
                pieces.append(DataPiece(entry.index, 0, entry.size))
                pending += entry.size
            if pending >= upload_part_size:
                units.append(Unit(emit_upload(), ()))
            continue

        if head:
            pieces.append(DataPiece(entry.index, 0, head))
            pending += head
        upload = emit_upload()
        copies = []
        for start, end in _copy_ranges(head, entry.size, settings.max_part_size):
            copies.append(CopyPart(number, part_offset, entry.index, start, end))
            number += 1
            part_offset += end - start
        units.append(Unit(upload, tuple(copies)))

    return _Layout(units, tuple(pieces), part_offset, number)


def _fit_parts(entries: list[Entry], settings: PlanSettings) -> _Layout:
    """Cut parts, growing upload parts and then the copy threshold until the parts fit."""
    upload_part_size = settings.upload_part_size
    copy_threshold = settings.copy_threshold
    while True:
        layout = _cut_parts(entries, settings, upload_part_size, copy_threshold)
        if layout.part_count <= settings.max_parts:
            if (upload_part_size, copy_threshold) != (settings.upload_part_size,
                                                      settings.copy_threshold):
                log.info(
                    "grew parts to fit %d parts: upload parts of %d B, objects of %d B or "
                    "more copied", settings.max_parts, upload_part_size, copy_threshold)
            return layout
        if upload_part_size < settings.max_upload_part_size:
            upload_part_size = min(2 * upload_part_size, settings.max_upload_part_size)
        elif copy_threshold < settings.max_copy_threshold:
            copy_threshold = min(2 * copy_threshold, settings.max_copy_threshold)
        else:
            raise PlanError(
                f"the archive needs {layout.part_count} parts even with upload parts of "
                f"{upload_part_size} B; S3 allows {settings.max_parts}. Each object of "
                f"{copy_threshold} B or more needs two parts of its own. Split the source "
                "into several archives, or raise max_upload_part_size. Nothing was written."
            )


def _unit_cost(unit: Unit) -> float:
    streamed = unit.upload.size + sum(
        p.end - p.start for p in unit.upload.pieces if isinstance(p, DataPiece))
    copied = sum(c.size for c in unit.copies)
    requests = 1 + len(unit.copies) + len(unit.upload.pieces) // 2
    return (streamed * _COST_PER_STREAMED_BYTE + copied * _COST_PER_COPIED_BYTE
            + requests * _COST_PER_REQUEST)


def _group_batches(units: list[Unit], entries: list[Entry], batch_count: int) -> list[Batch]:
    """Split the units, in order, into at most batch_count batches of similar cost. There is
    always at least one batch, even an empty one, so that a fan-out has a branch to run."""
    costs = [_unit_cost(u) for u in units]
    total = sum(costs)
    count = max(1, min(batch_count, len(units)))
    groups: list[list[Unit]] = [[] for _ in range(count)]
    done = 0.0
    for unit, cost in zip(units, costs, strict=False):
        middle = done + cost / 2  # a unit goes where most of its cost falls
        slot = min(count - 1, int(middle / total * count)) if total else 0
        groups[slot].append(unit)
        done += cost
    groups = [g for g in groups if g] or [[]]

    batches = []
    for index, group in enumerate(groups):
        touched = {p.entry for u in group for p in u.upload.pieces}
        touched |= {c.entry for u in group for c in u.copies}
        batches.append(Batch(index, group, {i: entries[i] for i in sorted(touched)}))
    return batches


def build_plan(
    objects: list[SourceObject],
    source_bucket: str,
    source_prefix: str,
    settings: PlanSettings = PlanSettings(),
    naming: NamingOptions = NamingOptions(),
    exclude_keys: frozenset[str] = frozenset(),
) -> Plan:
    """Lay out the archive of `objects` and cut it into parts and batches.

    Raises SourceError, NamingError or PlanError when the archive cannot be made as asked.
    """
    chosen, skipped = select_entries(objects, source_bucket, source_prefix, naming,
                                     exclude_keys)
    entries = lay_out_entries(chosen)
    layout = _fit_parts(entries, settings)

    directory_offset = entries[-1].data_offset + entries[-1].size
    directory_size = sum(
        zipformat.central_header_size(e.name_bytes, e.size, e.offset) for e in entries)
    end_size = zipformat.end_records_size(len(entries), directory_offset, directory_size)
    final = FinalPart(layout.part_count, layout.trailing_offset, layout.trailing,
                      directory_offset, directory_size, end_size)

    archive_size = final.offset + final.size
    if archive_size > settings.max_archive_size:
        raise PlanError(
            f"the archive of s3://{source_bucket}/{source_prefix} would be {archive_size} B; "
            f"the target allows {settings.max_archive_size} B per object. Split the source "
            "into several archives with include/exclude patterns. Nothing was written."
        )
    if final.size > settings.max_part_size:
        raise PlanError(
            f"the central directory of {len(entries)} entries needs a final part of "
            f"{final.size} B, over S3's {settings.max_part_size} B. Split the source into "
            "several archives. Nothing was written."
        )

    batches = _group_batches(layout.units, entries, settings.batch_count)
    plan = Plan(source_bucket, source_prefix, entries, batches, final, settings, skipped)
    log.info(
        "planned %d entries into an archive of %d B: %d copy parts, %d upload parts, "
        "%d batches", len(entries), plan.archive_size, plan.copy_parts, plan.upload_parts,
        len(batches))
    return plan


__all__ = [
    "Batch", "CopyPart", "DataPiece", "Entry", "FinalPart", "HeaderPiece", "NamingOptions",
    "Piece", "Plan", "PlanSettings", "SourceObject", "Unit", "UploadPart", "build_plan",
]
