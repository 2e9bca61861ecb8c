"""Executing a plan: the copy parts and upload parts of a batch, then the final part.

This module decides nothing about the layout and speaks to no service directly: it asks a
PartStore to copy, read and upload, so the same code writes an archive to S3 or, in tests,
to a local file. It runs anywhere Python runs: in a Dagster op, or in an AWS Lambda.
"""

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from . import zipformat
from .crc import RunningCrc, crc32_combine, crc32_of_tail
from .errors import IntegrityError
from .plan import Batch, CopyPart, Entry, FinalPart, HeaderPiece, Piece, Plan, Unit

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class CopyResult:
    """What a copy part returned: its ETag and, when the store gives it, its CRC-32."""

    etag: str
    crc: int | None


@dataclass(frozen=True)
class CompletedPart:
    """A part of the archive's upload, as Complete needs it."""

    number: int
    etag: str
    crc: int
    size: int


class PartStore(Protocol):
    """Where source bytes come from and where the archive's parts go."""

    def copy_part(self, part: CopyPart, entry: Entry) -> CopyResult:
        """Copy bytes [part.start, part.end) of the entry's source object into part
        part.number of the archive."""

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the entry's source object, exactly end - start of
        them, or raise SourceChangedError."""

    def whole_object_crc(self, entry: Entry) -> int | None:
        """The CRC-32 of the whole source object when the store keeps one, else None."""

    def upload_part(self, number: int, body: bytes | bytearray, crc: int) -> str:
        """Upload part `number` with its CRC-32; return its ETag."""


@dataclass
class BatchResult:
    """What a batch produced: its completed parts and the CRC-32 of the entries it holds."""

    batch: int
    parts: list[CompletedPart] = field(default_factory=list)
    entry_crcs: dict[int, int] = field(default_factory=dict)
    copy_parts: int = 0
    upload_parts: int = 0
    copied_bytes: int = 0
    read_bytes: int = 0  # source bytes downloaded to compose upload parts
    crc_read_bytes: int = 0  # source bytes read only because the store gave no copy CRC
    uploaded_bytes: int = 0
    seconds: float = 0.0


def run_in_threads(tasks: Iterable[Callable[[], T]], threads: int) -> list[T]:
    """Run the tasks in a thread pool; return their results in order. At the first failure
    cancel what has not started, wait for what has, and raise that failure."""
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3zip") as pool:
        futures: list[Future[T]] = [pool.submit(task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            wait(futures)
            raise failed[0].exception()  # type: ignore[misc]
        return [f.result() for f in futures]


class _Counters:
    """Byte counts shared by the threads of one batch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.read_bytes = 0
        self.crc_read_bytes = 0
        self.uploaded_bytes = 0

    def add(self, name: str, count: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)


def _compose(
    store: PartStore,
    pieces: tuple[Piece, ...],
    size: int,
    entries: dict[int, Entry],
    crc_of_split_entry: Callable[[Entry, int], int] | None,
    counters: _Counters,
) -> tuple[bytearray, dict[int, int]]:
    """Lay the pieces into one buffer of `size` bytes: data first, then each local header
    into the room kept for it, once its entry's CRC-32 is known.

    An entry whose data lies wholly in these pieces gets the CRC of those bytes. An entry
    that continues in copy parts (only the last one can) gets `crc_of_split_entry(entry,
    crc_of_its_head)`. Memory: the buffer plus one piece.
    """
    body = bytearray(size)
    position = 0
    header_slots: list[tuple[Entry, int]] = []
    crcs: dict[int, int] = {}
    head_lengths: dict[int, int] = {}
    for piece in pieces:
        entry = entries[piece.entry]
        if isinstance(piece, HeaderPiece):
            header_slots.append((entry, position))
            position += entry.header_size
            continue
        data = store.read(entry, piece.start, piece.end)
        counters.add("read_bytes", len(data))
        body[position : position + len(data)] = data
        position += len(data)
        crcs[entry.index] = zlib.crc32(data)
        head_lengths[entry.index] = len(data)

    for entry, at in header_slots:
        if head_lengths.get(entry.index, 0) < entry.size:
            if crc_of_split_entry is None:
                raise IntegrityError(f"entry {entry.name!r} continues past this part, which "
                                     "has no copy parts")
            crcs[entry.index] = crc_of_split_entry(entry, crcs.get(entry.index, 0))
        else:
            crcs.setdefault(entry.index, 0)  # an empty entry or folder
        header = zipformat.local_header(entry.name_bytes, entry.size, crcs[entry.index],
                                        entry.mtime)
        body[at : at + len(header)] = header

    if position != size:
        raise IntegrityError(f"pieces add up to {position} B, the plan says {size} B")
    return body, crcs


def _copy_crcs_to_entry_crc(
    store: PartStore, entry: Entry, head_crc: int, head_length: int,
    copies: tuple[CopyPart, ...], results: dict[int, CopyResult], counters: _Counters,
) -> tuple[int, dict[int, int]]:
    """The entry's CRC-32 from its head and its copy parts; also each copy part's CRC.

    In order of preference (DESIGN: CRC sources): the CRC each copy returned; for a last
    range without one, the object's full-object CRC-32 less the rest; else read the range.
    """
    part_crcs = {c.number: results[c.number].crc for c in copies}
    missing = [c for c in copies if part_crcs[c.number] is None]
    if missing:
        whole = store.whole_object_crc(entry) if missing == [copies[-1]] else None
        if whole is not None:
            before = RunningCrc()
            before.add_crc(head_crc, head_length)
            for copy in copies[:-1]:
                before.add_crc(part_crcs[copy.number], copy.size)  # type: ignore[arg-type]
            part_crcs[copies[-1].number] = crc32_of_tail(before.value, whole, copies[-1].size)
        else:
            for copy in missing:
                crc = 0
                for start in range(copy.start, copy.end, _CRC_READ_CHUNK):
                    chunk = store.read(entry, start, min(copy.end, start + _CRC_READ_CHUNK))
                    crc = zlib.crc32(chunk, crc)
                    counters.add("crc_read_bytes", len(chunk))
                part_crcs[copy.number] = crc
            log.warning("the store gave no CRC-32 for the copy of source key %s; read %d B to "
                        "compute it", entry.key, sum(c.size for c in missing))

    crc = head_crc
    for copy in copies:
        crc = crc32_combine(crc, part_crcs[copy.number], copy.size)  # type: ignore[arg-type]
    return crc, part_crcs  # type: ignore[return-value]


_CRC_READ_CHUNK = 8 * 1024 * 1024  # read size when a copied range's CRC must be computed


def _run_unit(store: PartStore, unit: Unit, batch: Batch, copy_results: dict[int, CopyResult],
              counters: _Counters) -> tuple[list[CompletedPart], dict[int, int]]:
    """Compose and upload the unit's upload part, once its copies have returned."""
    copy_crcs: dict[int, int] = {}

    def crc_of_split_entry(entry: Entry, head_crc: int) -> int:
        head_length = unit.copies[0].start
        crc, part_crcs = _copy_crcs_to_entry_crc(
            store, entry, head_crc, head_length, unit.copies, copy_results, counters)
        copy_crcs.update(part_crcs)
        return crc

    body, entry_crcs = _compose(store, unit.upload.pieces, unit.upload.size, batch.entries,
                                crc_of_split_entry if unit.copies else None, counters)
    crc = zlib.crc32(body)
    etag = store.upload_part(unit.upload.number, body, crc)
    counters.add("uploaded_bytes", len(body))
    log.debug("upload part %d: %d B, %d pieces", unit.upload.number, len(body),
              len(unit.upload.pieces))

    parts = [CompletedPart(unit.upload.number, etag, crc, unit.upload.size)]
    for copy in unit.copies:
        parts.append(CompletedPart(copy.number, copy_results[copy.number].etag,
                                   copy_crcs[copy.number], copy.size))
    return parts, entry_crcs


def run_batch(store: PartStore, batch: Batch, threads: int) -> BatchResult:
    """Make every part of a batch: first its copy parts, then its upload parts.

    Copies go first because an upload part holds the local header, and so the CRC-32, of
    the object copied after it.
    """
    started = time.monotonic()
    counters = _Counters()
    copies = [(copy, batch.entries[copy.entry]) for unit in batch.units for copy in unit.copies]

    def copy_task(copy: CopyPart, entry: Entry) -> Callable[[], CopyResult]:
        def task() -> CopyResult:
            result = store.copy_part(copy, entry)
            log.debug("copy part %d: %d B of %s", copy.number, copy.size, entry.key)
            return result
        return task

    copy_list = run_in_threads([copy_task(c, e) for c, e in copies], threads)
    copy_results = {c.number: r for (c, _), r in zip(copies, copy_list, strict=False)}

    unit_results = run_in_threads(
        [lambda u=unit: _run_unit(store, u, batch, copy_results, counters)
         for unit in batch.units],
        threads,
    )

    result = BatchResult(batch.index)
    for parts, entry_crcs in unit_results:
        result.parts.extend(parts)
        result.entry_crcs.update(entry_crcs)
    result.copy_parts = len(copies)
    result.upload_parts = len(batch.units)
    result.copied_bytes = sum(c.size for c, _ in copies)
    result.read_bytes = counters.read_bytes
    result.crc_read_bytes = counters.crc_read_bytes
    result.uploaded_bytes = counters.uploaded_bytes
    result.seconds = time.monotonic() - started
    log.info(
        "batch %d: %d copy parts (%d B copied by S3), %d upload parts (%d B read, %d B "
        "uploaded) in %.1f s", batch.index, result.copy_parts, result.copied_bytes,
        result.upload_parts, result.read_bytes, result.uploaded_bytes, result.seconds)
    return result


def central_directory(entries: list[Entry], crcs: dict[int, int], final: FinalPart) -> bytes:
    """The central directory and the end records."""
    missing = [e.name for e in entries if e.index not in crcs]
    if missing:
        raise IntegrityError(f"no CRC-32 for {len(missing)} entries, first {missing[0]!r}")
    records = bytearray()
    for entry in entries:
        records += zipformat.central_header(entry.name_bytes, entry.size, crcs[entry.index],
                                            entry.mtime, entry.offset, entry.is_dir)
    if len(records) != final.directory_size:
        raise IntegrityError(f"central directory has {len(records)} B, the plan says "
                             f"{final.directory_size} B")
    records += zipformat.end_records(len(entries), final.directory_offset, final.directory_size)
    return bytes(records)


@dataclass
class FinalResult:
    """The final part, and everything Complete needs."""

    parts: list[CompletedPart]
    archive_crc: int
    read_bytes: int
    uploaded_bytes: int


def run_final_part(store: PartStore, plan: Plan, results: list[BatchResult]) -> FinalResult:
    """Compose the final part from the last entries and the central directory, upload it,
    and return every part in order with the CRC-32 of the whole archive."""
    counters = _Counters()
    entry_map = {p.entry: plan.entries[p.entry] for p in plan.final.pieces}
    pieces_size = plan.final.directory_offset - plan.final.offset
    body, tail_crcs = _compose(store, plan.final.pieces, pieces_size, entry_map, None, counters)

    crcs: dict[int, int] = {}
    for result in results:
        crcs.update(result.entry_crcs)
    crcs.update(tail_crcs)
    body += central_directory(plan.entries, crcs, plan.final)
    if len(body) != plan.final.size:
        raise IntegrityError(f"final part has {len(body)} B, the plan says {plan.final.size} B")

    crc = zlib.crc32(body)
    etag = store.upload_part(plan.final.number, body, crc)
    counters.add("uploaded_bytes", len(body))

    parts = [p for r in results for p in r.parts]
    parts.append(CompletedPart(plan.final.number, etag, crc, len(body)))
    parts.sort(key=lambda p: p.number)
    numbers = [p.number for p in parts]
    if numbers != list(range(1, plan.part_count + 1)):
        raise IntegrityError(f"parts made do not match the plan's 1..{plan.part_count}")

    archive_crc = RunningCrc()
    for part in parts:
        archive_crc.add_crc(part.crc, part.size)
    if archive_crc.length != plan.archive_size:
        raise IntegrityError(f"parts add up to {archive_crc.length} B, the plan says "
                             f"{plan.archive_size} B")
    return FinalResult(parts, archive_crc.value, counters.read_bytes, counters.uploaded_bytes)
