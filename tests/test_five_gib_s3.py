"""End to end on SeaweedFS with an object one byte over S3's largest part (5 GiB + 1 B):
its data must be copied in two ranges whose CRC-32s combine, its entry and the central
directory need ZIP64, and the archive is read by every reader. The object is written by a
multipart upload of a repeated pattern, streamed part by part, and deleted afterwards."""

import random
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

from s3zip_dagster.core.crc import crc32_to_s3
from s3zip_dagster.core.limits import MAX_PART_SIZE, MiB
from s3zip_dagster.core.plan import ZERO_STREAM, PlanSettings
from s3zip_dagster.core.runner import build_archive
from s3zip_dagster.local_s3 import HOST

from .archive_checks import (
    assert_entry_crcs_are_s3_checksums,
    expected_entries,
    fetch_and_check,
    payload,
    put_objects,
    read_keys,
    source_ranges,
)

HUGE_SIZE = MAX_PART_SIZE + 1
PUT_PART_SIZE = 64 * MiB
PUT_THREADS = 4
# The pattern's period is prime to the part sizes, so a range copied from the wrong offset
# holds other bytes and changes the CRC-32.
PATTERN_PERIOD = MiB + 7


def put_patterned(client, bucket: str, key: str, size: int) -> int:
    """Write `size` bytes of a repeated random block as a multipart upload with a
    full-object CRC-32, holding a few parts in memory at a time; return the CRC-32."""
    block = random.Random("five-gib").randbytes(PATTERN_PERIOD)
    repeated = memoryview(block * (PUT_PART_SIZE // PATTERN_PERIOD + 2))
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC32",
                                            ChecksumType="FULL_OBJECT")["UploadId"]

    def put_part(number: int, start: int, end: int) -> dict:
        phase = start % PATTERN_PERIOD
        body = bytes(repeated[phase : phase + end - start])
        crc = crc32_to_s3(zlib.crc32(body))
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                                  Body=body, ChecksumCRC32=crc)["ETag"]
        return {"PartNumber": number, "ETag": etag, "ChecksumCRC32": crc}

    starts = list(range(0, size, PUT_PART_SIZE))
    parts, crc = [], 0
    with ThreadPoolExecutor(max_workers=PUT_THREADS) as pool:
        for first in range(0, len(starts), PUT_THREADS):  # a window of parts at a time
            window = starts[first : first + PUT_THREADS]
            futures = [pool.submit(put_part, first + i + 1, start,
                                   min(size, start + PUT_PART_SIZE))
                       for i, start in enumerate(window)]
            for start in window:
                phase = start % PATTERN_PERIOD
                crc = zlib.crc32(repeated[phase : phase + min(size - start, PUT_PART_SIZE)],
                                 crc)
            parts += [f.result() for f in futures]
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": parts},
                                     ChecksumCRC32=crc32_to_s3(crc), ChecksumType="FULL_OBJECT")
    return crc


def reclaim_space(local_s3) -> None:
    """Have SeaweedFS rewrite its volumes without deleted objects: it keeps their bytes on
    disk until a vacuum, and this test writes some 15 GiB."""
    url = f"http://{HOST}:{local_s3.ports['master']}/vol/vacuum?garbageThreshold=0.0001"
    with urllib.request.urlopen(url, timeout=600) as response:
        assert response.status == 200


def test_an_object_of_5_gib_and_one_byte_is_copied_in_two_ranges_into_a_zip64_archive(
        local_s3, s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    # 6 MiB of small objects fill an upload part before the huge object, which is then
    # copied whole, straight into the archive: in two ranges, each under the part limit.
    small = {"p/a-small.bin": payload(3 * MiB, "a"), "p/b-small.bin": payload(3 * MiB, "b"),
             "p/d-small.txt": b"after the huge one\n"}
    put_objects(s3_client, source, small)
    try:
        huge_crc = put_patterned(s3_client, source, "p/c-huge.bin", HUGE_SIZE)
        report = build_archive(s3_client, source, "p/", destination, "out.zip",
                               PlanSettings(batch_count=2, strategy=ZERO_STREAM))

        plan = report.plan
        huge = [r for r in source_ranges(plan) if plan.entries[r.entry].key == "p/c-huge.bin"]
        assert [(r.start, r.end) for r in huge] == [(0, HUGE_SIZE // 2 + 1),
                                                     (HUGE_SIZE // 2 + 1, HUGE_SIZE)]
        assert all(p.size <= MAX_PART_SIZE for p in plan.all_parts())
        assert plan.zip64 and plan.archive_size > HUGE_SIZE
        assert "p/c-huge.bin" not in read_keys(plan)
        assert report.read_bytes == sum(len(b) for b in small.values())

        expected = {**expected_entries(small, "p/"), "c-huge.bin": (HUGE_SIZE, huge_crc)}
        archive = fetch_and_check(s3_client, destination, "out.zip", report, tmp_path,
                                  java_classes, expected)
        assert assert_entry_crcs_are_s3_checksums(s3_client, source, "p/", archive) == 4
    finally:
        (tmp_path / "archive.zip").unlink(missing_ok=True)  # fetch_and_check's download
        s3_client.delete_object(Bucket=source, Key="p/c-huge.bin")
        s3_client.delete_object(Bucket=destination, Key="out.zip")
        reclaim_space(local_s3)
