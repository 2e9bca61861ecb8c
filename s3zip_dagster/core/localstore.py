"""A PartStore that writes the archive to a local file, for tests of the ZIP bytes.

Copy parts are copied by reading the source range and writing it at the part's offset, and
answer with the CRC-32 of that range, as S3 does. Temporary objects are files beside the
archive. The batch and final-part code that runs against S3 runs unchanged against this.
"""

import os
import zlib
from collections.abc import Callable
from pathlib import Path

from .batch import CompletedPart, CopyResult, run_batch, run_final_part
from .errors import IntegrityError, SourceChangedError
from .model import Entry, Plan, Temp

ByteSource = Callable[[Entry, int, int], bytes]  # (entry, start, end) -> bytes [start, end)

_CHUNK = 16 * 1024 * 1024


class LocalPartStore:
    """Writes parts into files at their planned offsets; sources come from a callable."""

    def __init__(self, path: Path, source: ByteSource, part_offsets: dict[int, int],
                 give_copy_crc: bool = True) -> None:
        self.path = path
        self.source = source
        self.part_offsets = part_offsets
        self.give_copy_crc = give_copy_crc
        self.temp_dir = path.with_name(path.name + ".temps")
        self.temp_dir.mkdir(exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.temps_made = 0

    def _temp_path(self, temp: Temp) -> Path:
        return self.temp_dir / f"temp-{temp.index:06d}"

    def _write(self, target: Temp | None, number: int, chunks) -> int:
        """Write chunks at the part's offset; return their CRC-32."""
        if target is None:
            fd, offset = self._fd, self.part_offsets[number]
        else:
            fd = os.open(self._temp_path(target), os.O_RDWR | os.O_CREAT, 0o644)
            offset = target.parts[number - 1].offset
        crc = 0
        try:
            for chunk in chunks:
                os.pwrite(fd, chunk, offset)
                offset += len(chunk)
                crc = zlib.crc32(chunk, crc)
        finally:
            if target is not None:
                os.close(fd)
        return crc

    def close(self) -> None:
        """Release the batch's resources; the archive file stays open for the next one."""

    def close_file(self) -> None:
        os.close(self._fd)

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        data = self.source(entry, start, end)
        if len(data) != end - start:
            raise SourceChangedError(f"{entry.key}: got {len(data)} B of [{start}, {end})")
        return data

    def copy_source(self, target: Temp | None, number: int, entry: Entry, start: int,
                    end: int) -> CopyResult:
        chunks = (self.read(entry, a, min(end, a + _CHUNK)) for a in range(start, end, _CHUNK))
        crc = self._write(target, number, chunks)
        return CopyResult(f"copy-{number}", crc if self.give_copy_crc else None)

    def copy_temp(self, target: Temp | None, number: int, temp: Temp, start: int,
                  end: int) -> CopyResult:
        path = self._temp_path(temp)

        def chunks():
            with open(path, "rb") as source:
                source.seek(start)
                left = end - start
                while left:
                    chunk = source.read(min(left, _CHUNK))
                    if not chunk:
                        raise IntegrityError(f"temporary object {temp.index} is short")
                    left -= len(chunk)
                    yield chunk

        crc = self._write(target, number, chunks())
        return CopyResult(f"copy-{number}", crc if self.give_copy_crc else None)

    def upload_part(self, target: Temp | None, number: int, body: bytes | bytearray,
                    crc: int) -> str:
        if zlib.crc32(body) != crc:
            raise ValueError(f"part {number}: CRC-32 does not match the body")
        self._write(target, number, [body])
        return f"upload-{number}"

    def whole_object_crc(self, entry: Entry) -> int | None:
        return None

    def probe_crc(self, entry: Entry, start: int, end: int) -> int | None:
        if not self.give_copy_crc:
            return None
        crc = 0
        for a in range(start, end, _CHUNK):
            crc = zlib.crc32(self.read(entry, a, min(end, a + _CHUNK)), crc)
        return crc

    def begin_temp(self, temp: Temp) -> None:
        self._temp_path(temp).unlink(missing_ok=True)
        self.temps_made += 1

    def complete_temp(self, temp: Temp, parts: list[CompletedPart], crc: int) -> None:
        data = self._temp_path(temp).read_bytes()
        if len(data) != temp.size or zlib.crc32(data) != crc:
            raise IntegrityError(f"temporary object {temp.index} differs from its parts")

    def discard_temp(self, temp: Temp, completed: bool) -> None:
        self._temp_path(temp).unlink(missing_ok=True)


def part_offsets(plan: Plan) -> dict[int, int]:
    """Archive offset of every part, by part number."""
    offsets = {plan.final.number: plan.final.offset}
    offsets.update({p.number: p.offset for p in plan.archive_parts()})
    return offsets


def write_archive(plan: Plan, source: ByteSource, path: Path, threads: int = 4,
                  give_copy_crc: bool = True) -> int:
    """Execute the plan into the file at `path`; return the archive's CRC-32."""
    path.unlink(missing_ok=True)
    store = LocalPartStore(path, source, part_offsets(plan), give_copy_crc)
    try:
        results = [run_batch(store, batch, threads) for batch in plan.batches]
        final = run_final_part(store, plan, results)
    finally:
        store.close_file()
    leftovers = list(store.temp_dir.iterdir())
    store.temp_dir.rmdir() if not leftovers else None
    if leftovers:
        raise IntegrityError(f"temporary objects left behind: {leftovers[:3]}")
    return final.archive_crc
