"""(b) The seed design's pairing strategy, in Python on the project's ZIP records.

Taken from the description of the seed design (Go, one AWS Lambda per part group): one
multipart upload; each big object (5 MiB or more) is copied by S3 (UploadPartCopy) and
paired with the upload part before it, which holds small objects streamed through the
worker, or, when the small objects have run out, the smallest big object left, streamed
whole; CRC-32s come from the bytes: computed while they stream for streamed objects, and
by reading the object for a copied one (the seed design read data for its CRCs).

Assumed where the description is silent:
- Pairing order: the biggest object left is copied, the smallest left is streamed, so the
  least data passes through; small objects fill a group's upload part in key order until
  it reaches S3's 5 MiB minimum. The last big object, with nothing left to pair it with,
  is streamed. Small objects left over after the last big one are streamed in parts of
  5 MiB or more; the last few join the final part with the central directory.
- One Lambda per group becomes one task per group in a pool of `threads` threads.
- A group's upload bytes are spooled (memory up to 64 MiB, then a temporary file) and sent
  in parts of at most 64 MiB, so memory stays bounded; a copy is split into ranges of at
  most 5 GiB. (The seed design had neither limit: both are S3 rules the archive needs.)
- ZIP records are the project's (s3zip_dagster.core.zipformat); the upload is created
  without a checksum algorithm, as the seed design did.
"""

import tempfile
import threading
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.cutting import split_range
from s3zip_dagster.core.limits import MAX_PART_SIZE, MAX_PARTS, MIN_PART_SIZE, MiB

SEND_SIZE = 64 * MiB  # largest upload part sent, and the spool's memory before disk
READ_CHUNK = 8 * MiB


@dataclass
class Item:
    """One entry: its source object and where it lies in the archive."""

    key: str
    name: bytes
    size: int
    mtime: int
    offset: int = 0
    crc: int = 0

    @property
    def header_size(self) -> int:
        return zipformat.local_header_size(self.name, self.size)


@dataclass
class Group:
    """An upload part's worth of streamed entries, then (maybe) the copied big object."""

    streamed: list[Item]
    copied: Item | None
    # (part number, start, end): upload parts within the group's bytes, copy ranges
    upload_numbers: list[tuple[int, int, int]] = field(default_factory=list)
    copy_numbers: list[tuple[int, int, int]] = field(default_factory=list)


def pair(items: list[Item]) -> tuple[list[Group], list[Item]]:
    """Group the entries as the seed design does; return the groups and the small entries
    left for the final part."""
    small = deque(i for i in items if i.size < MIN_PART_SIZE)
    big = deque(sorted((i for i in items if i.size >= MIN_PART_SIZE), key=lambda i: i.size))
    groups = []
    while big:
        copied = big.pop()
        group = Group([], copied)
        size = copied.header_size
        while small and size < MIN_PART_SIZE:
            group.streamed.append(small.popleft())
            size += group.streamed[-1].header_size + group.streamed[-1].size
        if size < MIN_PART_SIZE:
            if big:
                group.streamed.append(big.popleft())
            else:
                group.streamed.append(copied)
                group.copied = None
        groups.append(group)

    rest: list[Item] = []
    size = 0
    for item in small:
        rest.append(item)
        size += item.header_size + item.size
        if size >= MIN_PART_SIZE:
            groups.append(Group(rest, None))
            rest, size = [], 0
    return groups, rest


def lay_out(groups: list[Group], rest: list[Item]) -> tuple[int, int]:
    """Give every entry its offset and every group its part numbers; return the final
    part's number and offset."""
    offset = 0
    number = 1
    for group in groups:
        start = offset
        for item in group.streamed:
            item.offset = offset
            offset += item.header_size + item.size
        if group.copied:
            group.copied.offset = offset
            offset += group.copied.header_size
        for a, b in split_range(0, offset - start, SEND_SIZE):
            group.upload_numbers.append((number, a, b))
            number += 1
        if group.copied:
            for a, b in split_range(0, group.copied.size, MAX_PART_SIZE):
                group.copy_numbers.append((number, a, b))
                number += 1
            offset += group.copied.size
    final_offset = offset
    for item in rest:
        item.offset = offset
        offset += item.header_size + item.size
    if number > MAX_PARTS:
        raise ValueError(f"the pairing needs {number} parts; S3 allows {MAX_PARTS}")
    return number, final_offset


class _Writer:
    """Runs the groups against one multipart upload; counts what passes through."""

    def __init__(self, client, job, upload_id: str) -> None:
        self.client = client
        self.job = job
        self.upload_id = upload_id
        self.crc_read_bytes = 0
        self.streamed_big_bytes = 0
        self._lock = threading.Lock()

    def _add(self, name: str, count: int) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + count)

    def _get(self, key: str):
        return self.client.get_object(Bucket=self.job.source_bucket, Key=key)["Body"]

    def _stream(self, item: Item, spool) -> None:
        """Write the item's local header and data to the spool, the CRC-32 once known."""
        at = spool.tell()
        spool.write(bytes(item.header_size))
        crc = 0
        for chunk in self._get(item.key).iter_chunks(READ_CHUNK):
            crc = zlib.crc32(chunk, crc)
            spool.write(chunk)
        item.crc = crc
        spool.seek(at)
        spool.write(zipformat.local_header(item.name, item.size, crc, item.mtime))
        spool.seek(0, 2)

    def _copy(self, item: Item, number: int, first: int, end: int) -> dict:
        answer = self.client.upload_part_copy(
            Bucket=self.job.destination_bucket, Key=self.job.destination_key,
            UploadId=self.upload_id, PartNumber=number,
            CopySource={"Bucket": self.job.source_bucket, "Key": item.key},
            CopySourceRange=f"bytes={first}-{end - 1}")
        return {"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]}

    def upload(self, number: int, body: bytes) -> dict:
        answer = self.client.upload_part(
            Bucket=self.job.destination_bucket, Key=self.job.destination_key,
            UploadId=self.upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def run_group(self, group: Group) -> list[dict]:
        """One Lambda of the seed design: copy the big object and read it for its CRC-32,
        stream the rest into the upload part before it."""
        parts = []
        if group.copied:
            item = group.copied
            parts += [self._copy(item, n, a, b) for n, a, b in group.copy_numbers]
            crc = 0
            for chunk in self._get(item.key).iter_chunks(READ_CHUNK):
                crc = zlib.crc32(chunk, crc)
                self._add("crc_read_bytes", len(chunk))
            item.crc = crc
        with tempfile.SpooledTemporaryFile(SEND_SIZE, dir=self.job.workdir) as spool:
            for item in group.streamed:
                self._stream(item, spool)
                if item.size >= MIN_PART_SIZE:
                    self._add("streamed_big_bytes", item.size)
            if group.copied:
                item = group.copied
                spool.write(zipformat.local_header(item.name, item.size, item.crc,
                                                   item.mtime))
            for number, a, b in group.upload_numbers:
                spool.seek(a)
                parts.append(self.upload(number, spool.read(b - a)))
        return parts


def _final_part(writer: _Writer, items: list[Item], rest: list[Item],
                final_offset: int) -> bytes:
    body = bytearray()
    for item in rest:
        data = writer._get(item.key).read()
        item.crc = zlib.crc32(data)
        body += zipformat.local_header(item.name, item.size, item.crc, item.mtime) + data
    directory_offset = final_offset + len(body)
    directory = bytearray()
    for item in sorted(items, key=lambda i: i.offset):
        directory += zipformat.central_header(item.name, item.size, item.crc, item.mtime,
                                              item.offset, False)
    body += directory
    body += zipformat.end_records(len(items), directory_offset, len(directory))
    return bytes(body)


def run(client, job) -> dict:
    items = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=job.source_bucket,
                                                                  Prefix=job.prefix):
        for o in page.get("Contents", []):
            items.append(Item(o["Key"], o["Key"][len(job.prefix):].encode(), o["Size"],
                              int(o["LastModified"].timestamp())))
    groups, rest = pair(items)
    final_number, final_offset = lay_out(groups, rest)

    bucket, key = job.destination_bucket, job.destination_key
    upload_id = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    writer = _Writer(client, job, upload_id)
    try:
        with ThreadPoolExecutor(job.threads) as pool:
            parts = [p for done in pool.map(writer.run_group, groups) for p in done]
        body = _final_part(writer, items, rest, final_offset)
        parts.append(writer.upload(final_number, body))
        parts.sort(key=lambda p: p["PartNumber"])
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    except BaseException:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise
    copied = [g.copied for g in groups if g.copied]
    return {
        "entries": len(items),
        "groups": len(groups),
        "parts": final_number,
        "copied_bytes": sum(i.size for i in copied),
        "crc_read_bytes": writer.crc_read_bytes,
        "streamed_big_bytes": writer.streamed_big_bytes,
        "extra_copied_bytes": 0,  # every copy lands in the archive: no temporary objects
    }
