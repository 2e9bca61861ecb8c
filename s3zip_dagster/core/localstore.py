"""A PartStore that writes the archive to a local file, for tests of the ZIP bytes.

Copy parts are copied by reading the source range and writing it at the part's offset, and
answer with the CRC-32 of that range, as S3 does. The batch and final-part code that runs
against S3 runs unchanged against this store.
"""

import os
import zlib
from collections.abc import Callable
from pathlib import Path

from .batch import CopyResult, run_batch, run_final_part
from .errors import SourceChangedError
from .plan import CopyPart, Entry, Plan

ByteSource = Callable[[Entry, int, int], bytes]  # (entry, start, end) -> bytes [start, end)

_CHUNK = 16 * 1024 * 1024


class LocalPartStore:
    """Writes parts into one file at their planned offsets; sources come from a callable."""

    def __init__(self, path: Path, source: ByteSource, part_offsets: dict[int, int],
                 give_copy_crc: bool = True) -> None:
        self.path = path
        self.source = source
        self.part_offsets = part_offsets
        self.give_copy_crc = give_copy_crc
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    def close(self) -> None:
        os.close(self._fd)

    def read(self, entry: Entry, start: int, end: int) -> bytes:
        data = self.source(entry, start, end)
        if len(data) != end - start:
            raise SourceChangedError(f"{entry.key}: got {len(data)} B of [{start}, {end})")
        return data

    def copy_part(self, part: CopyPart, entry: Entry) -> CopyResult:
        crc = 0
        offset = self.part_offsets[part.number]
        for start in range(part.start, part.end, _CHUNK):
            chunk = self.read(entry, start, min(part.end, start + _CHUNK))
            os.pwrite(self._fd, chunk, offset + start - part.start)
            crc = zlib.crc32(chunk, crc)
        return CopyResult(etag=f"copy-{part.number}", crc=crc if self.give_copy_crc else None)

    def whole_object_crc(self, entry: Entry) -> int | None:
        return None

    def upload_part(self, number: int, body: bytes | bytearray, crc: int) -> str:
        if zlib.crc32(body) != crc:
            raise ValueError(f"part {number}: CRC-32 does not match the body")
        os.pwrite(self._fd, body, self.part_offsets[number])
        return f"upload-{number}"


def part_offsets(plan: Plan) -> dict[int, int]:
    """Archive offset of every part, by part number."""
    offsets = {plan.final.number: plan.final.offset}
    for batch in plan.batches:
        for unit in batch.units:
            offsets[unit.upload.number] = unit.upload.offset
            offsets.update({c.number: c.offset for c in unit.copies})
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
        store.close()
    return final.archive_crc
