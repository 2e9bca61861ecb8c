"""A first end-to-end archive on the local S3 server, checked by every reader."""

import zlib

from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.runner import build_archive

from .archive_checks import assert_no_leftovers
from .readers import check_with_all_readers


def test_mixed_prefix_becomes_a_valid_archive(local_s3, s3_client, bucket_pair, tmp_path,
                                              java_classes):
    source, destination = bucket_pair
    objects = {
        "p/small.txt": b"small\n",
        "p/big.bin": bytes(range(256)) * (48 * 1024),  # 12 MiB: copied by S3
        "p/sub/ü +%?#.txt": "ü".encode() * 1000,
        "p/empty": b"",
        "p/folder/": b"",
        "p/mid.bin": b"m" * (6 * MiB),
    }
    for key, body in objects.items():
        s3_client.put_object(Bucket=source, Key=key, Body=body)

    report = build_archive(s3_client, source, "p/", destination, "out.zip")

    assert report.plan.copy_parts >= 1
    path = tmp_path / "out.zip"
    s3_client.download_file(destination, "out.zip", str(path))
    expected = {k[2:]: (len(v), zlib.crc32(v)) for k, v in objects.items()}
    check_with_all_readers(path, java_classes, expected)
    assert zlib.crc32(path.read_bytes()) == report.archive_crc
    assert_no_leftovers(s3_client, destination)
