"""Shared steps of the end-to-end tests: put source objects, fetch and check an archive,
read a plan's parts back as keys, and prove that a run left nothing behind in the
destination bucket: no multipart upload and no temporary object under the scratch prefix."""

import base64
import random
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3zip_dagster.core.limits import KiB, MiB
from s3zip_dagster.core.plan import (
    DEFAULT_SCRATCH_PREFIX,
    Composed,
    DataPiece,
    Plan,
    SourceRange,
)
from s3zip_dagster.core.runner import ArchiveReport

from .readers import check_with_all_readers

UPLOAD_THREADS = 16
_CRC_CHUNK = 1 << 24


def payload(size: int, seed: int | str) -> bytes:
    """Deterministic bytes that do not repeat, so a misplaced range changes every CRC."""
    return random.Random(seed).randbytes(size)


def mixed_objects() -> dict[str, bytes]:
    """Big objects of 10-11 MiB with small and empty ones between them, ending in a small
    one: under zero-stream a lead, tails and (in two batches) a CRC probe."""
    return {
        "p/00-big.bin": payload(11 * MiB, "big0"),
        "p/01-small.txt": b"first small\n",
        "p/02-empty": b"",
        "p/03-small.bin": payload(300 * KiB, "s3"),
        "p/04-big.bin": payload(10 * MiB + 7, "big4"),
        "p/05-small.bin": payload(2 * MiB, "s5"),
        "p/06-big.bin": payload(11 * MiB + 1, "big6"),
        "p/07-empty": b"",
        "p/08-small.bin": payload(4 * MiB, "s8"),
        "p/09-last.txt": b"the last entry sits in the final part\n",
    }


def put_objects(client, bucket: str, objects: dict[str, bytes], **extra) -> None:
    """Put every object, in parallel: thousands of keys take seconds instead of minutes."""
    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1], **extra)

    with ThreadPoolExecutor(max_workers=UPLOAD_THREADS) as pool:
        list(pool.map(put, objects.items()))


def expected_entries(objects: dict[str, bytes], prefix: str = "",
                     name_prefix: str = "") -> dict[str, tuple[int, int]]:
    """Entry name -> (size, CRC-32) of the bytes that were uploaded."""
    return {name_prefix + key[len(prefix):]: (len(body), zlib.crc32(body))
            for key, body in objects.items()}


def s3_crc32(value: str) -> int:
    """S3's ChecksumCRC32 header: base64 of the CRC's 4 big-endian bytes."""
    raw = base64.b64decode(value, validate=True)
    assert len(raw) == 4, value
    return int.from_bytes(raw, "big")


def file_crc32(path: Path) -> int:
    """The CRC-32 of a file, read in chunks: archives of several GiB stay out of memory."""
    crc = 0
    with open(path, "rb") as stream:
        while chunk := stream.read(_CRC_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


# What a plan does with each source object.

def source_ranges(plan: Plan) -> list[SourceRange]:
    """Every range of a source object that S3 copies into the archive or into a temporary
    object, fillers left out (their bytes never reach the archive)."""
    return [p.source for p in plan.all_parts()
            if isinstance(p.source, SourceRange) and not p.source.filler]


def copied_keys(plan: Plan) -> set[str]:
    """Keys of the source objects whose data S3 copies (into the archive or a temporary
    object)."""
    return {plan.entries[r.entry].key for r in source_ranges(plan)}


def read_keys(plan: Plan) -> set[str]:
    """Keys of the source objects a worker reads, in whole or in part, to compose parts."""
    pieces = [piece for p in plan.all_parts() if isinstance(p.source, Composed)
              for piece in p.source.pieces]
    return {plan.entries[p.entry].key for p in [*pieces, *plan.final.pieces]
            if isinstance(p, DataPiece)}


def temp_kinds(plan: Plan) -> list[str]:
    return [t.kind for t in plan.temps()]


# What a run leaves in the destination bucket.

def uploads_left(client, bucket: str) -> list[str]:
    """Keys of the multipart uploads still in progress in the bucket."""
    pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
    return [u["Key"] for page in pages for u in page.get("Uploads", [])]


def no_uploads_left(client, bucket: str) -> bool:
    return not uploads_left(client, bucket)


def scratch_objects(client, bucket: str, prefix: str = DEFAULT_SCRATCH_PREFIX) -> list[str]:
    """Keys of the objects under the scratch prefix: temporary objects left behind."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def assert_no_leftovers(client, bucket: str) -> None:
    """No multipart upload (archive, temporary object or CRC probe) and no temporary
    object in the bucket."""
    uploads = uploads_left(client, bucket)
    assert uploads == [], f"multipart uploads left in s3://{bucket}: {uploads}"
    temps = scratch_objects(client, bucket)
    assert temps == [], f"temporary objects left in s3://{bucket}: {temps}"


def fetch_and_check(client, bucket: str, key: str, report: ArchiveReport, tmp_path: Path,
                    java_classes: Path, expected: dict[str, tuple[int, int]]) -> Path:
    """Download the archive and check it every way the project promises:

    - every ZIP reader accepts it and sees exactly `expected`, entry by entry: name, size
      and the CRC-32 of the source object's bytes;
    - the CRC-32 of the downloaded bytes is the one the run computed and the one S3 keeps
      as the object's full-object checksum;
    - its size is the planned size; no multipart upload and no temporary object is left.
    """
    path = tmp_path / "archive.zip"
    client.download_file(bucket, key, str(path))
    check_with_all_readers(path, java_classes, expected)

    size = path.stat().st_size
    assert size == report.plan.archive_size
    assert file_crc32(path) == report.archive_crc

    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT", head
    assert s3_crc32(head["ChecksumCRC32"]) == report.archive_crc
    assert head["ContentLength"] == size

    assert_no_leftovers(client, bucket)
    return path


def assert_entry_crcs_are_s3_checksums(client, bucket: str, prefix: str, path: Path) -> int:
    """Each entry's CRC-32 in the archive equals the CRC-32 S3 keeps of its source object
    (computed by S3 when the object was put); returns how many entries were compared."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    for info in infos:
        head = client.head_object(Bucket=bucket, Key=prefix + info.filename,
                                  ChecksumMode="ENABLED")
        assert "ChecksumCRC32" in head, f"S3 keeps no CRC-32 of {info.filename}"
        assert s3_crc32(head["ChecksumCRC32"]) == info.CRC, info.filename
    return len(infos)


def assert_nothing_written(client, bucket: str) -> None:
    """The destination bucket holds no object (so no temporary object either) and no
    multipart upload."""
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [], f"objects written to s3://{bucket}: {keys}"
    uploads = uploads_left(client, bucket)
    assert uploads == [], f"multipart uploads left in s3://{bucket}: {uploads}"
