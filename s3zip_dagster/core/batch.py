"""Executing a plan: the parts of a batch, its temporary objects, then the final part.

This module decides nothing about the layout and speaks to no service directly: it asks a
PartStore to copy, read and upload, so the same code writes an archive to S3 or, in tests,
to a local file. It runs anywhere Python runs: in a Dagster op, or in an AWS Lambda.

A batch runs in phases, each a pool of threads: begin its temporary objects; every copy of
a source range (and every CRC-32 probe); compose and upload every upload part, now that
each big entry's CRC-32 is known; complete the temporary objects, level by level; copy
them into the archive; delete them. A failure discards every temporary object it began.
"""

import logging
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

from . import zipformat
from .crc import RunningCrc, crc32_of_tail
from .errors import IntegrityError
from .model import (
    Batch,
    Composed,
    Entry,
    HeaderPiece,
    Part,
    Piece,
    Plan,
    SourceRange,
    Temp,
    TempRange,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

_CRC_READ_CHUNK = 8 * 1024 * 1024  # read size when a copied range's CRC must be computed


@dataclass(frozen=True)
class CopyResult:
    """What a copy part returned: its ETag and, when the store gives it, its CRC-32."""

    etag: str
    crc: int | None


@dataclass(frozen=True)
class CompletedPart:
    """A part of a multipart upload, as Complete needs it."""

    number: int
    etag: str
    crc: int
    size: int


class PartStore(Protocol):
    """Where source bytes come from and where the parts go. `target` None is the archive;
    otherwise the part belongs to that temporary object."""

    def copy_source(self, target: Temp | None, number: int, entry: Entry, start: int,
                    end: int) -> CopyResult:
        """Copy bytes [start, end) of the entry's source object into part `number`."""

    def copy_temp(self, target: Temp | None, number: int, temp: Temp, start: int,
                  end: int) -> CopyResult:
        """Copy bytes [start, end) of a completed temporary object into part `number`."""

    def upload_part(self, target: Temp | None, number: int, body: bytes | bytearray,
                    crc: int) -> str:
        """Upload part `number` with its CRC-32; return its ETag."""

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the entry's source object, exactly end - start of
        them, or raise SourceChangedError."""

    def whole_object_crc(self, entry: Entry) -> int | None:
        """The CRC-32 of the whole source object when the store keeps one, else None."""

    def probe_crc(self, entry: Entry, start: int, end: int) -> int | None:
        """The CRC-32 of a source range, learnt by a copy that is then thrown away."""

    def begin_temp(self, temp: Temp) -> None:
        """Begin the multipart upload of a temporary object."""

    def complete_temp(self, temp: Temp, parts: list[CompletedPart], crc: int) -> None:
        """Complete a temporary object from its parts, checked against its CRC-32."""

    def discard_temp(self, temp: Temp, completed: bool) -> None:
        """Delete a completed temporary object, or abort one still being assembled."""

    def close(self) -> None:
        """Release what the store holds for this batch (its probe upload)."""


@dataclass
class BatchResult:
    """What a batch produced: its archive parts and the CRC-32 of the entries it holds."""

    batch: int
    parts: list[CompletedPart] = field(default_factory=list)
    entry_crcs: dict[int, int] = field(default_factory=dict)
    copy_parts: int = 0
    upload_parts: int = 0
    temps: int = 0
    copied_bytes: int = 0  # copied by S3: into the archive, into temporary objects, probes
    read_bytes: int = 0  # source bytes downloaded to compose upload parts
    crc_read_bytes: int = 0  # source bytes read only because the store gave no copy CRC
    uploaded_bytes: int = 0
    seconds: float = 0.0


def run_in_threads(tasks: Iterable[Callable[[], T]], threads: int) -> list[T]:
    """Run the tasks in a thread pool; return their results in order. At the first failure
    cancel what has not started, wait for what has, and raise that failure."""
    tasks = list(tasks)
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="s3zip") as pool:
        futures: list[Future[T]] = [pool.submit(task) for task in tasks]
        wait(futures, return_when=FIRST_EXCEPTION)
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
        self.copied_bytes = 0

    def add(self, name: str, count: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)


def _read_crc(store: PartStore, entry: Entry, start: int, end: int, counters: _Counters) -> int:
    crc = 0
    for at in range(start, end, _CRC_READ_CHUNK):
        chunk = store.read(entry, at, min(end, at + _CRC_READ_CHUNK))
        crc = zlib.crc32(chunk, crc)
        counters.add("crc_read_bytes", len(chunk))
    return crc


def _combine(entry: Entry, ranges: list[tuple[int, int, int]]) -> int:
    """The entry's CRC-32 from CRCs of ranges that must cover its data exactly once."""
    crc = RunningCrc()
    for start, end, range_crc in sorted(ranges):
        if start != crc.length:
            raise IntegrityError(f"entry {entry.name!r}: its ranges leave a gap or overlap "
                                 f"at byte {crc.length}")
        crc.add_crc(range_crc, end - start)
    if crc.length != entry.size:
        raise IntegrityError(f"entry {entry.name!r}: ranges cover {crc.length} of "
                             f"{entry.size} B")
    return crc.value


def compose(store: PartStore, pieces: tuple[Piece, ...], size: int,
            entries: dict[int, Entry], crc_of_entry: Callable[[Entry, list], int],
            counters: _Counters) -> tuple[bytearray, dict[int, int]]:
    """Lay the pieces into one buffer of `size` bytes: data first, then each local header
    into the room kept for it, once its entry's CRC-32 is known.

    An entry whose data lies wholly in these pieces gets the CRC of those bytes; any other
    gets `crc_of_entry(entry, ranges_read_here)`. Memory: the buffer plus one piece.
    """
    body = bytearray(size)
    position = 0
    header_slots: list[tuple[Entry, int]] = []
    read_here: dict[int, list[tuple[int, int, int]]] = {}
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
        read_here.setdefault(entry.index, []).append((piece.start, piece.end, zlib.crc32(data)))
    if position != size:
        raise IntegrityError(f"pieces add up to {position} B, the plan says {size} B")

    crcs: dict[int, int] = {}
    for entry, at in header_slots:
        ranges = read_here.get(entry.index, [])
        if sum(end - start for start, end, _ in ranges) == entry.size:
            crcs[entry.index] = _combine(entry, ranges) if ranges else 0
        else:
            crcs[entry.index] = crc_of_entry(entry, ranges)
        header = zipformat.local_header(entry.name_bytes, entry.size, crcs[entry.index],
                                        entry.mtime)
        body[at : at + len(header)] = header
    return body, crcs


def _levels(temps: list[Temp]) -> list[list[Temp]]:
    """Temporary objects by the order they can be completed: one that copies from others
    comes after them."""
    by_index = {t.index: t for t in temps}
    level: dict[int, int] = {}

    def level_of(temp: Temp) -> int:
        if temp.index not in level:
            sources = [p.source.temp for p in temp.parts if isinstance(p.source, TempRange)]
            level[temp.index] = 1 + max((level_of(by_index[s]) for s in sources), default=-1)
        return level[temp.index]

    grouped: dict[int, list[Temp]] = {}
    for temp in temps:
        grouped.setdefault(level_of(temp), []).append(temp)
    return [grouped[k] for k in sorted(grouped)]


class _BatchRun:
    """The state of one batch while it runs."""

    def __init__(self, store: PartStore, batch: Batch, threads: int) -> None:
        self.store = store
        self.batch = batch
        self.threads = threads
        self.counters = _Counters()
        self.temps = {t.index: t for t in batch.temps}
        self.done: dict[tuple[int | None, int], CompletedPart] = {}  # (temp, number) -> part
        self.copy_crcs: dict[tuple[int | None, int], int | None] = {}
        self.range_crcs: dict[int, list[tuple[int, int, int]]] = {}  # entry -> ranges
        self.entry_crcs: dict[int, int] = {}
        self.begun: set[int] = set()
        self.completed: set[int] = set()
        # entry -> (start, whole-object CRC-32): the CRC of its last range [start, size)
        # comes from the whole object's once the CRC of [0, start) is known (phase 3)
        self.from_whole: dict[int, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _parallel(self, tasks: list[Callable[[], T]]) -> list[T]:
        return run_in_threads(tasks, self.threads)

    def _all_parts(self) -> list[tuple[Temp | None, Part]]:
        parts: list[tuple[Temp | None, Part]] = [(None, p) for p in self.batch.parts]
        parts += [(t, p) for t in self.batch.temps for p in t.parts]
        return parts

    # Phase 1 and 2: temporary objects begun, source ranges copied, probes made.

    def begin_temps(self) -> None:
        def begin(temp: Temp) -> Callable[[], None]:
            def task() -> None:
                self.store.begin_temp(temp)
                with self._lock:
                    self.begun.add(temp.index)
            return task
        self._parallel([begin(t) for t in self.batch.temps])

    def copy_sources(self) -> None:
        jobs = [(t, p) for t, p in self._all_parts() if isinstance(p.source, SourceRange)]

        def copy(target: Temp | None, part: Part) -> Callable[[], None]:
            def task() -> None:
                source = part.source
                assert isinstance(source, SourceRange)
                entry = self.batch.entries[source.entry]
                result = self.store.copy_source(target, part.number, entry, source.start,
                                                source.end)
                key = (target.index if target else None, part.number)
                with self._lock:
                    self.copy_crcs[key] = result.crc
                    self.done[key] = CompletedPart(part.number, result.etag, -1, part.size)
                self.counters.add("copied_bytes", part.size)
            return task

        def probe(source: SourceRange) -> Callable[[], tuple[SourceRange, int | None]]:
            def task() -> tuple[SourceRange, int | None]:
                entry = self.batch.entries[source.entry]
                crc = self.store.probe_crc(entry, source.start, source.end)
                self.counters.add("copied_bytes", source.size)
                return source, crc
            return task

        self._parallel([copy(t, p) for t, p in jobs])
        probed = self._parallel([probe(s) for s in self.batch.probes])
        self._settle_source_crcs(jobs, probed)

    def _settle_source_crcs(self, jobs: list[tuple[Temp | None, Part]],
                            probed: list[tuple[SourceRange, int | None]]) -> None:
        """Every copied range gets its CRC-32: from the copy itself, else (DESIGN: CRC
        sources) from the object's full-object CRC-32, else by reading the range."""
        known: dict[tuple[int, int, int], int] = {}
        sources = [p.source for _, p in jobs] + [s for s, _ in probed]
        crcs = [self.copy_crcs[(t.index if t else None, p.number)] for t, p in jobs]
        crcs += [crc for _, crc in probed]
        for source, crc in zip(sources, crcs, strict=True):
            if crc is not None:
                known[(source.entry, source.start, source.end)] = crc  # type: ignore[union-attr]

        wanted = {(s.entry, s.start, s.end) for s in sources}  # type: ignore[union-attr]
        missing = wanted - known.keys()
        if missing:
            missing -= self._last_ranges_from_whole(missing)
            self._fill_missing(missing, known)

        for target, part in jobs:
            key = (target.index if target else None, part.number)
            source = part.source
            assert isinstance(source, SourceRange)
            if (source.entry, source.start, source.end) in known:
                self.done[key] = replace(self.done[key],
                                         crc=known[(source.entry, source.start, source.end)])
        for source in sources:
            assert isinstance(source, SourceRange)
            if source.filler or (source.entry, source.start, source.end) not in known:
                continue
            ranges = self.range_crcs.setdefault(source.entry, [])
            crc = known[(source.entry, source.start, source.end)]
            if (source.start, source.end, crc) not in ranges:
                ranges.append((source.start, source.end, crc))

    def _last_ranges_from_whole(self, missing: set[tuple[int, int, int]]
                                ) -> set[tuple[int, int, int]]:
        """Missing ranges [start, size) > 0 of entries whose local header this batch composes
        and whose object keeps a full-object CRC-32 (DESIGN: CRC sources): their CRC comes
        from the whole object's and that of [0, start), known once the header is composed,
        instead of from reading them. Returns the ranges so settled."""
        last = {e: (e, start, end) for e, start, end in missing
                if start > 0 and end == self.batch.entries[e].size and e in self.batch.headers}

        def ask(entry_index: int) -> Callable[[], tuple[int, int | None]]:
            def task() -> tuple[int, int | None]:
                return entry_index, self.store.whole_object_crc(self.batch.entries[entry_index])
            return task

        settled = set()
        for entry_index, whole in self._parallel([ask(e) for e in sorted(last)]):
            if whole is not None:
                self.from_whole[entry_index] = (last[entry_index][1], whole)
                settled.add(last[entry_index])
        return settled

    def _fill_missing(self, missing: set[tuple[int, int, int]],
                      known: dict[tuple[int, int, int], int]) -> None:
        """CRCs the copies did not return: a whole object's from its full-object checksum
        when the store keeps one, any other range's by reading it."""
        def settle(entry_index: int, start: int, end: int) -> Callable[[], None]:
            def task() -> None:
                entry = self.batch.entries[entry_index]
                if (start, end) == (0, entry.size):
                    whole = self.store.whole_object_crc(entry)
                    if whole is not None:
                        known[(entry_index, start, end)] = whole
                        return
                known[(entry_index, start, end)] = _read_crc(self.store, entry, start, end,
                                                             self.counters)
                log.warning("no CRC-32 came back from copying %s [%d, %d); read the range "
                            "to compute it", entry.key, start, end)
            return task

        self._parallel([settle(*key) for key in sorted(missing)])

    # Phase 3: upload parts, composed once the CRC-32 of every big entry is known.

    def crc_of_entry(self, entry: Entry, read_here: list[tuple[int, int, int]]) -> int:
        ranges = self.range_crcs.get(entry.index, []) + read_here
        if entry.index in self.from_whole:
            start, whole = self.from_whole[entry.index]
            head = _combine(replace(entry, size=start), [r for r in ranges if r[1] <= start])
            last = (start, entry.size, crc32_of_tail(head, whole, entry.size - start))
            with self._lock:
                self.range_crcs.setdefault(entry.index, []).append(last)
            ranges.append(last)
        return _combine(entry, ranges)

    def settle_ranges_from_whole(self) -> None:
        """Give the copies of ranges settled from a whole-object CRC-32 their CRC, now that
        composing the local headers has computed it."""
        derived = {(e, start, end): crc for e in self.from_whole
                   for start, end, crc in self.range_crcs.get(e, [])}
        for target, part in self._all_parts():
            source = part.source
            if not isinstance(source, SourceRange) or source.entry not in self.from_whole:
                continue
            key = (target.index if target else None, part.number)
            if self.done[key].crc < 0:
                crc = derived.get((source.entry, source.start, source.end))
                if crc is None:
                    raise IntegrityError(f"no CRC-32 for the copy of {source} in part "
                                         f"{part.number}")
                self.done[key] = replace(self.done[key], crc=crc)

    def upload_composed(self) -> None:
        jobs = [(t, p) for t, p in self._all_parts() if isinstance(p.source, Composed)]

        def upload(target: Temp | None, part: Part) -> Callable[[], None]:
            def task() -> None:
                source = part.source
                assert isinstance(source, Composed)
                body, crcs = compose(self.store, source.pieces, source.size,
                                     self.batch.entries, self.crc_of_entry, self.counters)
                crc = zlib.crc32(body)
                etag = self.store.upload_part(target, part.number, body, crc)
                self.counters.add("uploaded_bytes", len(body))
                log.debug("upload part %d%s: %d B", part.number,
                          f" of temporary object {target.index}" if target else "", len(body))
                with self._lock:
                    self.entry_crcs.update(crcs)
                    key = (target.index if target else None, part.number)
                    self.done[key] = CompletedPart(part.number, etag, crc, part.size)
            return task

        self._parallel([upload(t, p) for t, p in jobs])

    # Phase 4 and 5: temporary objects completed, level by level; copied into the archive.

    def crc_of_temp_range(self, temp: Temp, start: int, end: int) -> int:
        """The CRC-32 of bytes [start, end) of a completed temporary object, from the CRCs
        of its parts (ranges of parts of temporary objects are followed down)."""
        crc = RunningCrc()
        for part in temp.parts:
            lo, hi = max(start, part.offset), min(end, part.offset + part.size)
            if lo >= hi:
                continue
            if (lo, hi) == (part.offset, part.offset + part.size):
                crc.add_crc(self.done[(temp.index, part.number)].crc, part.size)
            elif isinstance(part.source, TempRange):
                inner = self.temps[part.source.temp]
                shift = part.source.start - part.offset
                crc.add_crc(self.crc_of_temp_range(inner, lo + shift, hi + shift), hi - lo)
            else:
                raise IntegrityError(f"temporary object {temp.index}: range [{start}, {end})"
                                     " splits a part that is not a copy of another one")
        return crc.value

    def copy_temp_ranges(self, target: Temp | None) -> None:
        parts = self.temps[target.index].parts if target else self.batch.parts
        jobs = [p for p in parts if isinstance(p.source, TempRange)]

        def copy(part: Part) -> Callable[[], None]:
            def task() -> None:
                source = part.source
                assert isinstance(source, TempRange)
                inner = self.temps[source.temp]
                result = self.store.copy_temp(target, part.number, inner, source.start,
                                              source.end)
                expected = self.crc_of_temp_range(inner, source.start, source.end)
                if result.crc is not None and result.crc != expected:
                    raise IntegrityError(
                        f"copy of temporary object {inner.index} [{source.start}, "
                        f"{source.end}) has CRC-32 {result.crc:08x}, its parts say "
                        f"{expected:08x}")
                self.counters.add("copied_bytes", part.size)
                with self._lock:
                    key = (target.index if target else None, part.number)
                    self.done[key] = CompletedPart(part.number, result.etag, expected,
                                                   part.size)
            return task

        self._parallel([copy(p) for p in jobs])

    def complete_temps(self) -> None:
        for level in _levels(self.batch.temps):
            for temp in level:
                self.copy_temp_ranges(temp)

            def complete(temp: Temp) -> Callable[[], None]:
                def task() -> None:
                    parts = [self.done[(temp.index, p.number)] for p in temp.parts]
                    crc = RunningCrc()
                    for part in parts:
                        crc.add_crc(part.crc, part.size)
                    self.store.complete_temp(temp, parts, crc.value)
                    with self._lock:
                        self.completed.add(temp.index)
                return task

            self._parallel([complete(t) for t in level])

    def discard_temps(self) -> None:
        """Delete every temporary object begun (abort those not completed)."""
        def discard(index: int) -> Callable[[], None]:
            def task() -> None:
                self.store.discard_temp(self.temps[index], index in self.completed)
            return task
        self._parallel([discard(i) for i in sorted(self.begun)])
        self.begun.clear()


def run_batch(store: PartStore, batch: Batch, threads: int) -> BatchResult:
    """Make every part of a batch (see the module doc for the phases). On failure, every
    temporary object the batch began is discarded before the error is raised."""
    started = time.monotonic()
    run = _BatchRun(store, batch, threads)
    try:
        run.begin_temps()
        run.copy_sources()
        run.upload_composed()
        run.settle_ranges_from_whole()
        run.complete_temps()
        run.copy_temp_ranges(None)
        run.discard_temps()
    except BaseException:
        _discard_after_failure(run)
        raise
    finally:
        store.close()

    result = BatchResult(batch.index)
    result.parts = [run.done[(None, p.number)] for p in batch.parts]
    result.entry_crcs = run.entry_crcs
    result.copy_parts = sum(1 for p in batch.parts if p.is_copy)
    result.upload_parts = len(batch.parts) - result.copy_parts
    result.temps = len(batch.temps)
    result.copied_bytes = run.counters.copied_bytes
    result.read_bytes = run.counters.read_bytes
    result.crc_read_bytes = run.counters.crc_read_bytes
    result.uploaded_bytes = run.counters.uploaded_bytes
    result.seconds = time.monotonic() - started
    log.info(
        "batch %d: %d copy parts, %d upload parts, %d temporary objects; %d B copied by S3, "
        "%d B read, %d B uploaded, in %.1f s", batch.index, result.copy_parts,
        result.upload_parts, result.temps, result.copied_bytes, result.read_bytes,
        result.uploaded_bytes, result.seconds)
    return result


def _discard_after_failure(run: _BatchRun) -> None:
    """Discard the temporary objects of a failed batch; a cleanup failure is logged, and
    the batch's own error is the one raised."""
    for index in sorted(run.begun):
        try:
            run.store.discard_temp(run.temps[index], index in run.completed)
        except Exception:
            log.exception("could not discard temporary object %d; the scratch prefix "
                          "cleanup removes it", index)


def central_directory(entries: list[Entry], crcs: dict[int, int], plan: Plan) -> bytes:
    """The central directory and the end records."""
    missing = [e.name for e in entries if e.index not in crcs]
    if missing:
        raise IntegrityError(f"no CRC-32 for {len(missing)} entries, first {missing[0]!r}")
    final = plan.final
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

    def no_copies(entry: Entry, ranges: list) -> int:
        raise IntegrityError(f"entry {entry.name!r} in the final part is not whole")

    body, tail_crcs = compose(store, plan.final.pieces, pieces_size, entry_map, no_copies,
                              counters)
    crcs: dict[int, int] = {}
    for result in results:
        crcs.update(result.entry_crcs)
    crcs.update(tail_crcs)
    body += central_directory(plan.entries, crcs, plan)
    if len(body) != plan.final.size:
        raise IntegrityError(f"final part has {len(body)} B, the plan says {plan.final.size} B")

    crc = zlib.crc32(body)
    etag = store.upload_part(None, plan.final.number, body, crc)
    counters.add("uploaded_bytes", len(body))

    parts = [p for r in results for p in r.parts]
    parts.append(CompletedPart(plan.final.number, etag, crc, len(body)))
    parts.sort(key=lambda p: p.number)
    if [p.number for p in parts] != list(range(1, plan.part_count + 1)):
        raise IntegrityError(f"parts made do not match the plan's 1..{plan.part_count}")

    archive_crc = RunningCrc()
    for part in parts:
        archive_crc.add_crc(part.crc, part.size)
    if archive_crc.length != plan.archive_size:
        raise IntegrityError(f"parts add up to {archive_crc.length} B, the plan says "
                             f"{plan.archive_size} B")
    return FinalResult(parts, archive_crc.value, counters.read_bytes, counters.uploaded_bytes)
