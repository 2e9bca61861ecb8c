"""Shared steps of the end-to-end tests: put source objects, fetch and check an archive,
and prove that a failed run left nothing behind in the destination bucket."""

import base64
import random
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from s3zip_dagster.core.runner import ArchiveReport

from .readers import check_with_all_readers

UPLOAD_THREADS = 16


def payload(size: int, seed: int | str) -> bytes:
    """Deterministic bytes that do not repeat, so a misplaced range changes every CRC."""
    return random.Random(seed).randbytes(size)


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


def no_uploads_left(client, bucket: str) -> bool:
    return not client.list_multipart_uploads(Bucket=bucket).get("Uploads")


def fetch_and_check(client, bucket: str, key: str, report: ArchiveReport, tmp_path: Path,
                    java_classes: Path, expected: dict[str, tuple[int, int]]) -> Path:
    """Download the archive and check it every way the project promises:

    - every ZIP reader accepts it and sees exactly `expected`;
    - the CRC-32 of the downloaded bytes is the one the run computed and the one S3 keeps
      as the object's full-object checksum;
    - its size is the planned size, and no multipart upload is left in the bucket.
    """
    path = tmp_path / "archive.zip"
    client.download_file(bucket, key, str(path))
    check_with_all_readers(path, java_classes, expected)

    data = path.read_bytes()
    assert len(data) == report.plan.archive_size
    assert zlib.crc32(data) == report.archive_crc

    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT", head
    assert s3_crc32(head["ChecksumCRC32"]) == report.archive_crc
    assert head["ContentLength"] == len(data)

    assert no_uploads_left(client, bucket)
    return path


def assert_nothing_written(client, bucket: str) -> None:
    """The destination bucket holds no object and no multipart upload."""
    assert client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert no_uploads_left(client, bucket)
