"""End to end on SeaweedFS for the zero-stream strategy: no byte of an object of 5 MiB or
more passes through a worker, boundaries between big objects are bridged by temporary
objects (lead-base, lead, tail), parts past max_parts are assembled into group objects, and
batches learn the CRC-32 of ranges another batch copies by probes.

Each archive is read by every reader, entry by entry against the source objects (and the
CRC-32 S3 keeps of each), its own CRC-32 against S3's full-object checksum; afterwards the
destination bucket holds no multipart upload and no temporary object."""

import random
import zlib
from collections import Counter

import pytest

from s3zip_dagster.core.limits import MIN_PART_SIZE, KiB, MiB
from s3zip_dagster.core.plan import (
    STRATEGIES,
    ZERO_STREAM,
    Composed,
    PlanSettings,
    SourceRange,
    TempRange,
)
from s3zip_dagster.core.runner import build_archive
from s3zip_dagster.core.s3 import S3PartStore

from .archive_checks import (
    assert_entry_crcs_are_s3_checksums,
    copied_keys,
    expected_entries,
    fetch_and_check,
    payload,
    put_objects,
    read_keys,
    temp_kinds,
)


def _archive(client, bucket_pair, objects, tmp_path, java_classes,
             settings=PlanSettings(strategy=ZERO_STREAM)):
    """Put the objects under p/, archive them, check the archive every way; return the
    report."""
    source, destination = bucket_pair
    put_objects(client, source, objects)
    report = build_archive(client, source, "p/", destination, "out.zip", settings)
    path = fetch_and_check(client, destination, "out.zip", report, tmp_path, java_classes,
                           expected_entries(objects, "p/"))
    assert assert_entry_crcs_are_s3_checksums(client, source, "p/", path) == len(objects)
    assert sum(r.crc_read_bytes for r in report.results) == 0, "every copy gave its CRC-32"
    return report


def _big(objects: dict[str, bytes]) -> set[str]:
    return {key for key, body in objects.items() if len(body) >= MIN_PART_SIZE}


def _assert_no_big_byte_through_a_worker(report, objects: dict[str, bytes]) -> None:
    small_bytes = sum(len(b) for k, b in objects.items() if k not in _big(objects))
    assert report.read_bytes == report.plan.read_bytes == small_bytes
    assert not read_keys(report.plan) & _big(objects)
    assert copied_keys(report.plan) == _big(objects)


def test_big_objects_only_are_bridged_by_lead_and_tail_objects(
        s3_client, bucket_pair, tmp_path, java_classes):
    sizes = {"a": 5 * MiB, "b": 5 * MiB + 1, "c": 7 * MiB, "d": 12 * MiB, "e": 20 * MiB}
    objects = {f"p/{name}.bin": payload(size, name) for name, size in sizes.items()}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      PlanSettings(batch_count=3, strategy=ZERO_STREAM))

    plan = report.plan
    assert report.read_bytes == 0
    assert copied_keys(plan) == set(objects)
    kinds = Counter(temp_kinds(plan))
    assert kinds["tail"] >= 1 and kinds["lead"] == kinds["lead-base"] >= 1
    assert all(p.is_copy for p in plan.archive_parts()), "no upload part but the final"
    headers = sum(e.header_size for e in plan.entries)
    assert report.uploaded_bytes == headers + plan.final.size, "local headers, directory"
    assert len(report.results) == len(plan.batches) >= 2


@pytest.mark.parametrize("order", [
    ("5MiB", "5MiB-1", "10MiB"), ("10MiB", "5MiB-1", "5MiB"), ("5MiB", "10MiB", "5MiB-1"),
], ids="-then-".join)
def test_objects_at_the_copy_threshold_and_twice_it(
        s3_client, bucket_pair, tmp_path, java_classes, order):
    # 5 MiB is the first size copied by S3, 5 MiB - 1 B the last one read; 10 MiB is split
    # into a head behind a lead object and a rest of about 5 MiB copied straight.
    sizes = {"5MiB": MIN_PART_SIZE, "5MiB-1": MIN_PART_SIZE - 1, "10MiB": 2 * MIN_PART_SIZE}
    objects = {f"p/{i}-{name}.bin": payload(sizes[name], name) for i, name in enumerate(order)}

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes)

    _assert_no_big_byte_through_a_worker(report, objects)
    assert report.read_bytes == MIN_PART_SIZE - 1
    assert "lead" in temp_kinds(report.plan)


def _mixed_objects(seed: int, count: int) -> dict[str, bytes]:
    """Small objects (empty ones too) and big ones between 5 and 13 MiB, in random order."""
    rng = random.Random(seed)
    objects = {}
    for i in range(count):
        kind = rng.choice(["empty", "tiny", "small", "small", "big"])
        size = {"empty": 0, "tiny": rng.randint(1, 4 * KiB),
                "small": rng.randint(4 * KiB, 3 * MiB), "big": rng.randint(5 * MiB, 13 * MiB)}[kind]
        objects[f"p/{i:03}-{kind}.bin"] = payload(size, f"{seed}-{i}")
    return objects


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_mixed_set_reads_no_byte_of_a_big_object_under_zero_stream_only(
        s3_client, bucket_pair, tmp_path, java_classes, strategy):
    objects = _mixed_objects(5, 24)
    assert len(_big(objects)) == 7

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      PlanSettings(batch_count=3, strategy=strategy))

    plan = report.plan
    if strategy == ZERO_STREAM:
        _assert_no_big_byte_through_a_worker(report, objects)
        assert set(temp_kinds(plan)) == {"lead-base", "lead", "tail"}
        assert sum(bool(b.probes) for b in plan.batches) == 2
    else:  # heads of big objects are read where small data runs out
        assert read_keys(plan) & _big(objects)
        small_bytes = sum(len(b) for k, b in objects.items() if k not in _big(objects))
        assert report.read_bytes > small_bytes
        assert plan.temps() == [] and not any(b.probes for b in plan.batches)
        assert plan.extra_copied_bytes == 0
        assert all(isinstance(p.source, SourceRange | Composed) for p in plan.archive_parts())


def test_past_max_parts_the_parts_are_assembled_into_group_objects(
        s3_client, bucket_pair, tmp_path, java_classes):
    # 50 big objects each need a part of their own (a lead), 51 parts with the final one:
    # over the lowered limit of 50, so each batch assembles its parts into group objects.
    rng = random.Random(300)
    big = set(rng.sample(range(300), 50))
    objects = {f"p/{i:03}.bin": payload(rng.randint(5 * MiB, 6 * MiB) if i in big
                                        else rng.randint(0, 40 * KiB), i) for i in range(300)}
    destination = bucket_pair[1]

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      PlanSettings(max_parts=50, batch_count=2, strategy=ZERO_STREAM))

    plan = report.plan
    kinds = Counter(temp_kinds(plan))
    assert kinds["group"] == len(plan.batches) == 2
    assert plan.part_count <= 50
    assert all(len(t.parts) <= 50 for t in plan.temps())
    assert all(isinstance(p.source, TempRange) for p in plan.archive_parts())
    head = s3_client.head_object(Bucket=destination, Key="out.zip", PartNumber=1)
    assert head["PartsCount"] == plan.part_count
    _assert_no_big_byte_through_a_worker(report, objects)


def test_batches_learn_the_crc_of_ranges_other_batches_copy_by_probes(
        s3_client, bucket_pair, tmp_path, java_classes, monkeypatch):
    # Big objects with small ones between: each big object's end goes into the tail object
    # of the next block, which a later batch may make. The batch that writes the local
    # header probes that range's CRC-32 with a copy into a throwaway upload.
    objects = {}
    for i in range(6):
        objects[f"p/{i}a-big.bin"] = payload(11 * MiB + 1000 * i, f"big{i}")
        objects[f"p/{i}b-small.txt"] = payload(3000 + i, f"small{i}")
    probed: list[tuple[str, int, int, int | None]] = []
    real_probe = S3PartStore.probe_crc

    def probe_crc(self, entry, start, end):
        crc = real_probe(self, entry, start, end)
        probed.append((entry.key, start, end, crc))
        return crc

    monkeypatch.setattr(S3PartStore, "probe_crc", probe_crc)

    report = _archive(s3_client, bucket_pair, objects, tmp_path, java_classes,
                      PlanSettings(batch_count=3, strategy=ZERO_STREAM))

    plan = report.plan
    planned = [(plan.entries[r.entry].key, r.start, r.end) for b in plan.batches
               for r in b.probes]
    assert len(planned) >= 2 and len({b.index for b in plan.batches if b.probes}) >= 2
    assert sorted(p[:3] for p in probed) == sorted(planned)
    for key, start, end, crc in probed:  # the copy's CRC-32 is that of the source range
        assert crc == zlib.crc32(objects[key][start:end]), (key, start, end)
    _assert_no_big_byte_through_a_worker(report, objects)
