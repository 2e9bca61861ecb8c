"""End to end on SeaweedFS: archive layouts by object size, under both strategies, each
archive checked by every reader, by its CRC-32 against S3's own checksum, and for leftover
multipart uploads and temporary objects."""

import random
from dataclasses import replace

import pytest

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.limits import MIN_PART_SIZE, KiB, MiB
from s3zip_dagster.core.plan import (
    HEAD_STREAM,
    STRATEGIES,
    ZERO_STREAM,
    Composed,
    PlanSettings,
    SourceRange,
    TempRange,
)
from s3zip_dagster.core.runner import build_archive

from .archive_checks import (
    copied_keys,
    expected_entries,
    fetch_and_check,
    mixed_objects,
    payload,
    put_objects,
    read_keys,
    source_ranges,
    temp_kinds,
)

THREE_BATCHES = PlanSettings(batch_count=3, upload_part_size=5 * MiB)


@pytest.fixture(params=STRATEGIES)
def strategy(request) -> str:
    return request.param


def _archive(client, bucket_pair, objects, tmp_path, java_classes, prefix="p/",
             settings=PlanSettings()):
    source, destination = bucket_pair
    put_objects(client, source, objects)
    report = build_archive(client, source, prefix, destination, "out.zip", settings)
    fetch_and_check(client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, prefix))
    return report


def test_small_objects_only_are_read_into_upload_parts_across_three_batches(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    sizes = random.Random(1).choices(range(1, 400 * KiB), k=100)
    objects = {f"p/small-{i:03}.bin": payload(size, i) for i, size in enumerate(sizes)}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=replace(THREE_BATCHES, strategy=strategy))

    assert report.plan.copy_parts == 0 and report.plan.temps() == []
    assert len(report.plan.batches) == len(report.results) == 3
    assert report.plan.upload_parts >= 3
    assert report.read_bytes == sum(sizes)


def test_big_objects_only_under_head_stream_stream_the_heads_that_pad_parts(
        s3_client, bucket_pair, tmp_path, java_classes):
    # With no small object to fill a part, head-stream reads the head of a big object into
    # the part that carries its local header. Zero-stream: test_zero_stream_s3.
    sizes = {"a": 5 * MiB, "b": 5 * MiB + 1, "c": 7 * MiB, "d": 12 * MiB, "e": 20 * MiB}
    objects = {f"p/{name}.bin": payload(size, name) for name, size in sizes.items()}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=PlanSettings(batch_count=3, strategy=HEAD_STREAM))

    assert report.plan.copy_parts >= 2
    assert {"p/d.bin", "p/e.bin"} <= copied_keys(report.plan)
    assert read_keys(report.plan) == {"p/a.bin", "p/c.bin", "p/e.bin"}  # e: its head
    assert report.plan.temps() == []
    assert report.plan.copied_bytes > sum(sizes.values()) // 2
    assert 0 < report.read_bytes < sum(sizes.values())
    assert len(report.results) >= 2


def test_mixed_small_big_and_empty_objects_in_several_batches(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    objects = mixed_objects()
    small_bytes = sum(len(b) for k, b in objects.items() if "big" not in k)

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=replace(THREE_BATCHES, strategy=strategy))

    assert report.plan.copy_parts >= 2
    assert len(report.results) == len(report.plan.batches) >= 2
    if strategy == ZERO_STREAM:
        assert report.read_bytes == small_bytes
        assert {"tail", "lead"} <= set(temp_kinds(report.plan))
    else:
        assert small_bytes < report.read_bytes < sum(len(b) for b in objects.values())


def test_a_single_small_object_is_an_archive_of_one_part(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    objects = {"p/only.txt": b"just this\n"}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=PlanSettings(strategy=strategy))

    assert report.plan.part_count == 1
    assert report.plan.copy_parts == 0


def test_a_single_big_object_is_copied_between_its_header_part_and_the_final_part(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    objects = {"p/only.bin": payload(12 * MiB, "only")}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=PlanSettings(strategy=strategy))

    plan = report.plan
    assert plan.part_count == 3
    if strategy == HEAD_STREAM:  # [header + head, read] [rest, copied] [final]
        assert plan.copy_parts == 1
        assert 5 * MiB - 100 < report.read_bytes < 6 * MiB
    else:  # [lead: header + head, copied from a temporary object] [rest, copied] [final]
        assert plan.copy_parts == 2
        assert report.read_bytes == 0
        assert temp_kinds(plan) == ["lead-base", "lead"]
        assert [type(p.source) for p in plan.archive_parts()] == [TempRange, SourceRange]


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_a_copy_range_of_exactly_the_minimum_part_size_is_planned_and_accepted(
        s3_client, bucket_pair, tmp_path, java_classes, strategy, extra):
    # The first part is the local header and the object's head, filled to 5 MiB (read by a
    # worker under head-stream, copied from a lead object under zero-stream); what is left
    # is copied straight into the archive only when it is 5 MiB too, since S3 refuses
    # smaller parts but the last.
    header = zipformat.local_header_size(b"edge.bin", 0)
    size = 2 * MIN_PART_SIZE - header + extra
    objects = {"p/edge.bin": payload(size, extra)}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=PlanSettings(strategy=strategy))

    direct = [p.source for p in report.plan.archive_parts() if isinstance(p.source, SourceRange)]
    assert [r.size for r in direct] == ([] if extra < 0 else [MIN_PART_SIZE + extra])
    if strategy == HEAD_STREAM:
        assert report.plan.copy_parts == len(direct)
        assert report.read_bytes == (size if extra < 0 else MIN_PART_SIZE - header)
    else:
        assert report.plan.copy_parts == 1 + len(direct)  # the lead object, then the rest
        assert report.read_bytes == 0


def test_empty_objects_only_become_entries_of_zero_bytes(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    objects = {"p/a": b"", "p/b.txt": b"", "p/deep/er/c": b"", "p/z": b""}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=replace(THREE_BATCHES, strategy=strategy))

    assert report.plan.part_count == 1
    assert report.read_bytes == 0


def test_an_object_larger_than_the_part_limit_is_copied_in_several_ranges(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    # Parts of at most 16 MiB stand in for S3's 5 GiB, so ranges are combined by CRC-32.
    limit = 16 * MiB
    settings = PlanSettings(max_part_size=limit, upload_part_size=5 * MiB,
                            max_upload_part_size=5 * MiB, batch_count=3, strategy=strategy)
    objects = {"p/a-small.txt": b"x" * 1000, "p/b-huge.bin": payload(40 * MiB + 3, "huge"),
               "p/c-big.bin": payload(31 * MiB, "big")}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      settings=settings)

    plan = report.plan
    huge = [r for r in source_ranges(plan) if plan.entries[r.entry].key == "p/b-huge.bin"]
    assert len(huge) >= 3
    assert all(p.size <= limit for p in plan.all_parts())
    assert plan.final.size <= limit
    assert sum(isinstance(p.source, Composed) for p in plan.all_parts()) >= 1
