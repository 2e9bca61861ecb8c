"""Archives on moto, an S3 whose UploadPartCopy answers no CopyPartResult checksum: the
CRC-32 of each copied range then comes from the source's full-object CRC-32 or from
reading the range, never from a composite checksum, and the archive stays correct under
both strategies (the ranges zero-stream copies into temporary objects included).

moto builds the completed object in memory and keeps its full-object CRC-32, so the
archive is downloaded and checked as on SeaweedFS."""

import base64
import zlib

import pytest

from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.plan import STRATEGIES, Plan, PlanSettings, SourceRange
from s3zip_dagster.core.runner import build_archive

from .archive_checks import expected_entries, fetch_and_check, payload, put_objects


@pytest.fixture
def moto_buckets(moto_client):
    moto_client.create_bucket(Bucket="src")
    moto_client.create_bucket(Bucket="dst")
    return moto_client


def _crc_read_bytes(report) -> int:
    return sum(result.crc_read_bytes for result in report.results)


def _copied_ranges(plan: Plan) -> list[set[tuple[int, int, int]]]:
    """Per batch, the distinct source ranges S3 copies (fillers and probes included): the
    ranges whose CRC-32 the batch must learn."""
    batches = []
    for batch in plan.batches:
        sources = [p.source for p in batch.parts] + [p.source for t in batch.temps
                                                     for p in t.parts] + batch.probes
        batches.append({(s.entry, s.start, s.end) for s in sources
                        if isinstance(s, SourceRange)})
    return batches


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_without_copy_checksums_every_copied_range_is_read_for_its_crc(
        moto_buckets, tmp_path, java_classes, strategy):
    objects = {
        "p/a.txt": b"small\n", "p/b-big.bin": payload(11 * MiB, "b"),
        "p/c.txt": payload(200_000, "c"), "p/d-huge.bin": payload(40 * MiB + 5, "d"),
        "p/e-empty": b"", "p/f.txt": b"last\n",
    }
    # Plain PUTs: moto keeps no full-object CRC-32 of these, so every range is read.
    put_objects(moto_buckets, "src", objects)
    # Parts of at most 16 MiB stand in for S3's 5 GiB: the huge object is copied in ranges.
    settings = PlanSettings(max_part_size=16 * MiB, upload_part_size=5 * MiB,
                            max_upload_part_size=5 * MiB, batch_count=3, strategy=strategy)

    report = build_archive(moto_buckets, "src", "p/", "dst", "out.zip", settings)

    huge = [r for r in _copied_ranges(report.plan)[-1] if r[0] == 3]
    assert len(huge) >= 3
    assert _crc_read_bytes(report) == sum(end - start for ranges in _copied_ranges(report.plan)
                                          for _, start, end in ranges)
    fetch_and_check(moto_buckets, "dst", "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, "p/"))


def _put_multipart(client, key: str, parts: list[bytes], checksum_type: str) -> None:
    """A source object uploaded in parts, keeping a CRC-32 of the given type."""
    def s3_crc(data: bytes) -> str:
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()

    upload = client.create_multipart_upload(Bucket="src", Key=key, ChecksumAlgorithm="CRC32",
                                            ChecksumType=checksum_type)["UploadId"]
    done = []
    for number, body in enumerate(parts, 1):
        etag = client.upload_part(Bucket="src", Key=key, UploadId=upload, PartNumber=number,
                                  Body=body, ChecksumCRC32=s3_crc(body))["ETag"]
        done.append({"PartNumber": number, "ETag": etag, "ChecksumCRC32": s3_crc(body)})
    whole = ({"ChecksumCRC32": s3_crc(b"".join(parts)), "ChecksumType": "FULL_OBJECT"}
             if checksum_type == "FULL_OBJECT" else {})
    client.complete_multipart_upload(Bucket="src", Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": done}, **whole)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("checksum_type", ["FULL_OBJECT", "COMPOSITE"])
def test_only_a_full_object_source_crc_spares_reading_the_last_copied_range(
        moto_buckets, tmp_path, java_classes, checksum_type, strategy):
    # The big object's head reaches the archive in the part of its local header: read by
    # a worker (head-stream) or copied through a lead object (zero-stream, whose head and
    # filler ranges are then read for their CRC-32). The rest is one range copied straight
    # into the archive: with a full-object CRC-32 its CRC comes from the head's and the
    # whole object's, without reading it.
    parts = [payload(6 * MiB, "one"), payload(5 * MiB + 11, "two")]
    _put_multipart(moto_buckets, "p/b-big.bin", parts, checksum_type)
    objects = {"p/a.txt": b"before\n", "p/b-big.bin": b"".join(parts), "p/c.txt": b"after\n"}
    put_objects(moto_buckets, "src", {k: v for k, v in objects.items() if k != "p/b-big.bin"})
    head = moto_buckets.head_object(Bucket="src", Key="p/b-big.bin", ChecksumMode="ENABLED")
    assert head["ChecksumType"] == checksum_type

    report = build_archive(moto_buckets, "src", "p/", "dst", "out.zip",
                           PlanSettings(strategy=strategy))

    size = len(objects["p/b-big.bin"])
    (ranges,) = _copied_ranges(report.plan)
    (rest,) = [r for r in ranges if r[2] == size and r[1] > 0]
    assert report.plan.copy_parts == (1 if strategy == "head-stream" else 2)
    assert report.requests["HeadObject"] == 1
    copied = sum(end - start for _, start, end in ranges)
    spared = rest[2] - rest[1] if checksum_type == "FULL_OBJECT" else 0
    assert _crc_read_bytes(report) == copied - spared
    fetch_and_check(moto_buckets, "dst", "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, "p/"))
