"""End to end on SeaweedFS: archive layouts by object size, each archive checked by every
reader, by its CRC-32 against S3's own checksum, and for leftover multipart uploads."""

import random

import pytest

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.limits import MIN_PART_SIZE, KiB, MiB
from s3zip_dagster.core.plan import PlanSettings
from s3zip_dagster.core.runner import build_archive

from .archive_checks import expected_entries, fetch_and_check, payload, put_objects

THREE_BATCHES = PlanSettings(batch_count=3, upload_part_size=5 * MiB)


def _archive(client, bucket_pair, objects, tmp_path, java_classes, prefix="p/",
             settings=PlanSettings()):
    source, destination = bucket_pair
    put_objects(client, source, objects)
    report = build_archive(client, source, prefix, destination, "out.zip", settings)
    fetch_and_check(client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, prefix))
    return report


def _copied_keys(report) -> set[str]:
    plan = report.plan
    return {plan.entries[c.entry].key
            for batch in plan.batches for unit in batch.units for c in unit.copies}


def test_small_objects_only_are_read_into_upload_parts_across_three_batches(
        s3_client, bucket_pair, tmp_path, java_classes):
    sizes = random.Random(1).choices(range(1, 400 * KiB), k=100)
    objects = {f"p/small-{i:03}.bin": payload(size, i) for i, size in enumerate(sizes)}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=THREE_BATCHES)

    assert report.plan.copy_parts == 0
    assert len(report.plan.batches) == len(report.results) == 3
    assert report.plan.upload_parts >= 3


def test_big_objects_only_are_copied_by_s3_with_no_small_object_to_pad_parts(
        s3_client, bucket_pair, tmp_path, java_classes):
    sizes = {"a": 5 * MiB, "b": 5 * MiB + 1, "c": 7 * MiB, "d": 12 * MiB, "e": 20 * MiB}
    objects = {f"p/{name}.bin": payload(size, name) for name, size in sizes.items()}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=PlanSettings(batch_count=3))

    assert report.plan.copy_parts >= 2
    assert {"p/d.bin", "p/e.bin"} <= _copied_keys(report)
    assert report.plan.copied_bytes > sum(sizes.values()) // 2
    assert len(report.results) >= 2


def test_mixed_small_big_and_empty_objects_in_three_batches(
        s3_client, bucket_pair, tmp_path, java_classes):
    objects = {
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

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=THREE_BATCHES)

    assert report.plan.copy_parts >= 2
    assert len(report.results) == 3
    assert report.read_bytes < sum(len(b) for b in objects.values())


def test_a_single_small_object_is_an_archive_of_one_part(
        s3_client, bucket_pair, tmp_path, java_classes):
    objects = {"p/only.txt": b"just this\n"}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes)

    assert report.plan.part_count == 1
    assert report.plan.copy_parts == 0


def test_a_single_big_object_is_copied_between_its_header_part_and_the_final_part(
        s3_client, bucket_pair, tmp_path, java_classes):
    objects = {"p/only.bin": payload(12 * MiB, "only")}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes)

    assert report.plan.copy_parts == 1
    assert report.plan.part_count == 3
    assert report.read_bytes < 6 * MiB


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_copy_range_of_exactly_the_minimum_part_size_is_planned_and_accepted(
        s3_client, bucket_pair, tmp_path, java_classes, extra):
    # The first part is the local header and the object's head, filled to 5 MiB; what is
    # left is copied only when it is 5 MiB too, since S3 refuses smaller parts but the last.
    header = zipformat.local_header_size(b"edge.bin", 0)
    size = 2 * MIN_PART_SIZE - header + extra
    objects = {"p/edge.bin": payload(size, extra)}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes)

    assert report.plan.copy_parts == (0 if extra < 0 else 1)
    if extra >= 0:
        assert report.plan.copied_bytes == MIN_PART_SIZE + extra


def test_empty_objects_only_become_entries_of_zero_bytes(
        s3_client, bucket_pair, tmp_path, java_classes):
    objects = {"p/a": b"", "p/b.txt": b"", "p/deep/er/c": b"", "p/z": b""}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=THREE_BATCHES)

    assert report.plan.part_count == 1
    assert report.read_bytes == 0


def test_an_object_larger_than_the_part_limit_is_copied_in_several_ranges(
        s3_client, bucket_pair, tmp_path, java_classes):
    # Parts of at most 10 MiB stand in for S3's 5 GiB, so ranges are combined by CRC-32.
    settings = PlanSettings(max_part_size=10 * MiB, upload_part_size=5 * MiB,
                            max_upload_part_size=5 * MiB, batch_count=3)
    objects = {"p/a-small.txt": b"x" * 1000, "p/b-huge.bin": payload(27 * MiB + 3, "huge"),
               "p/c-big.bin": payload(16 * MiB, "big")}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=settings)

    ranges = [len(unit.copies) for batch in report.plan.batches for unit in batch.units]
    assert max(ranges) >= 3
    assert all(c.size <= 10 * MiB for b in report.plan.batches for u in b.units
               for c in u.copies)
