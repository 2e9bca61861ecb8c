"""A run that fails after its upload began leaves nothing behind, on SeaweedFS: the error
reaches the caller, the archive's multipart upload is aborted, every temporary object is
deleted or its upload aborted, the CRC-32 probe upload is aborted, and no archive appears.

Two kinds of failure: a source object that changes between the listing and the copy or
read of its data, and a failure injected into a part store in the middle of a batch: into
the archive's parts, or into the temporary objects of the zero-stream plan."""

import re
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

from s3zip_dagster.core import runner
from s3zip_dagster.core.errors import SourceChangedError
from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.plan import (
    HEAD_STREAM,
    STRATEGIES,
    ZERO_STREAM,
    Plan,
    PlanSettings,
    TempRange,
)
from s3zip_dagster.core.runner import build_archive
from s3zip_dagster.core.s3 import UploadTarget

from .archive_checks import (
    assert_nothing_written,
    copied_keys,
    mixed_objects,
    payload,
    put_objects,
    read_keys,
    temp_kinds,
)
from .injection import InjectedFailure, failing_store


@dataclass
class Watched:
    """What the runner planned and which uploads it began."""

    plans: list[Plan] = field(default_factory=list)
    targets: list[UploadTarget] = field(default_factory=list)


@pytest.fixture
def watched(monkeypatch) -> Watched:
    seen = Watched()
    real_plan, real_begin = runner.build_plan, runner.begin_upload

    def build_plan(*args, **kwargs):
        seen.plans.append(real_plan(*args, **kwargs))
        return seen.plans[-1]

    def begin_upload(*args, **kwargs):
        seen.targets.append(real_begin(*args, **kwargs))
        return seen.targets[-1]

    monkeypatch.setattr(runner, "build_plan", build_plan)
    monkeypatch.setattr(runner, "begin_upload", begin_upload)
    return seen


def assert_upload_aborted(client, watched: Watched) -> None:
    """The run began exactly one archive upload, S3 no longer knows it, and the destination
    bucket holds no object (archive or temporary) and no multipart upload (archive,
    temporary object or probe)."""
    assert len(watched.targets) == 1
    target = watched.targets[0]
    with pytest.raises(ClientError) as error:
        client.list_parts(Bucket=target.bucket, Key=target.key, UploadId=target.upload_id)
    assert error.value.response["Error"]["Code"] == "NoSuchUpload"
    assert_nothing_written(client, target.bucket)


# The two small objects fill an upload part, so under either strategy the big object is
# copied whole, straight into the archive: no byte of it is read, and only the copy's ETag
# condition can notice the change.
SOURCE = {
    "p/a1-small.bin": payload(3 * MiB, "first"),
    "p/a2-small.bin": payload(3 * MiB, "second"),
    "p/b-big.bin": payload(11 * MiB, "big"),
    "p/c-small.txt": b"another small\n" * 100,
}
# A tiny object before the big one: under zero-stream its head reaches the archive through
# a lead object, whose filler and head are copies of the big object too.
SOURCE_WITH_LEAD = {"p/a.txt": b"tiny\n", "p/b-big.bin": SOURCE["p/b-big.bin"]}


def _change_after_listing(monkeypatch, client, bucket: str, objects: dict[str, bytes],
                          key: str, change: str) -> None:
    real_list = runner.list_source

    def list_then_change(*args, **kwargs):
        listing = real_list(*args, **kwargs)
        if change == "deleted":
            client.delete_object(Bucket=bucket, Key=key)
        else:  # the same size, so only the ETag tells the versions apart
            body = bytes(b ^ 0xFF for b in objects[key][:64]) + objects[key][64:]
            client.put_object(Bucket=bucket, Key=key, Body=body)
        return listing

    monkeypatch.setattr(runner, "list_source", list_then_change)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("change", ["overwritten", "deleted"])
@pytest.mark.parametrize("key", ["p/b-big.bin", "p/c-small.txt"], ids=["copied", "read"])
def test_an_object_changed_after_the_listing_fails_the_run_and_aborts_the_upload(
        s3_client, bucket_pair, monkeypatch, watched, key, change, strategy):
    source, destination = bucket_pair
    put_objects(s3_client, source, SOURCE)
    _change_after_listing(monkeypatch, s3_client, source, SOURCE, key, change)

    with pytest.raises(SourceChangedError, match=re.escape(f"s3://{source}/{key} ")):
        build_archive(s3_client, source, "p/", destination, "out.zip",
                      PlanSettings(strategy=strategy))

    plan = watched.plans[-1]
    if key == "p/b-big.bin":
        assert key in copied_keys(plan) and key not in read_keys(plan)
    else:
        assert key in read_keys(plan) and key not in copied_keys(plan)
    assert_upload_aborted(s3_client, watched)


@pytest.mark.parametrize("change", ["overwritten", "deleted"])
def test_an_object_changed_after_the_listing_fails_its_copies_into_temporary_objects(
        s3_client, bucket_pair, monkeypatch, watched, change):
    source, destination = bucket_pair
    key = "p/b-big.bin"
    put_objects(s3_client, source, SOURCE_WITH_LEAD)
    _change_after_listing(monkeypatch, s3_client, source, SOURCE_WITH_LEAD, key, change)

    with pytest.raises(SourceChangedError, match=re.escape(f"s3://{source}/{key} ")):
        build_archive(s3_client, source, "p/", destination, "out.zip",
                      PlanSettings(strategy=ZERO_STREAM))

    assert temp_kinds(watched.plans[-1]) == ["lead-base", "lead"]
    assert_upload_aborted(s3_client, watched)


@pytest.fixture
def stores(monkeypatch, watched) -> list:
    """Replaces the runner's part store with a failing one. The test appends (operation,
    succeed, on_final_part) first; the stores made follow."""
    made: list = []

    def make_store(*args, **kwargs):
        operation, succeed, on_final_part = made[0]
        part_number = watched.plans[-1].final.number if on_final_part else None
        made.append(failing_store(operation, succeed, part_number)(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(runner, "S3PartStore", make_store)
    return made


# One batch of four upload parts with three copy parts in between, and the final part:
# under zero-stream too, each big object is copied whole, with no temporary object.
MANY_PARTS = {
    **{f"p/{i:02}.bin": payload(MiB + 7, i) for i in range(24)},
    **{f"p/{i:02}-big.bin": payload(10 * MiB + 1, i) for i in (5, 12, 19)},
}
ONE_BATCH = PlanSettings(batch_count=1, upload_part_size=5 * MiB, strategy=ZERO_STREAM)


@pytest.mark.parametrize(("operation", "succeed", "final"), [
    ("upload_part", 2, False),
    ("copy_source", 1, False),
    ("upload_part", 0, True),
], ids=["upload-part", "copy-part", "final-part"])
def test_a_failure_in_the_middle_of_a_batch_propagates_and_aborts_the_upload(
        s3_client, bucket_pair, watched, stores, operation, succeed, final):
    source, destination = bucket_pair
    put_objects(s3_client, source, MANY_PARTS)
    stores.append((operation, succeed, final))

    with pytest.raises(InjectedFailure, match=f"injected failure in {operation}"):
        build_archive(s3_client, source, "p/", destination, "out.zip", ONE_BATCH, threads=4)

    plan = watched.plans[-1]
    assert len(plan.batches) == 1 and plan.temps() == []
    assert plan.copy_parts == 3 and plan.upload_parts == 5
    done = stores[1].done
    if final:  # every other part was in S3 when the final part failed
        assert sorted(done) == list(range(1, plan.part_count))
    else:  # the failure came with parts of the batch made and parts still to make
        assert succeed <= len(done) < plan.part_count - 1
    assert_upload_aborted(s3_client, watched)


# Zero-stream in two batches: the first makes a lead (from a lead-base) and a tail and
# probes the CRC-32 of a range the second copies into its own tail.
WITH_TEMPS = mixed_objects()
TWO_BATCHES = PlanSettings(batch_count=2, upload_part_size=5 * MiB, strategy=ZERO_STREAM)


@pytest.mark.parametrize(("operation", "succeed", "completed_before"), [
    ("begin_temp", 1, 0),  # one temporary object begun, the others not yet
    ("upload_part", 0, 0),  # the composed part of a temporary object
    ("complete_temp", 1, 1),  # one of the first level completed, the other failing
    ("copy_temp", 1, 3),  # the lead copied from its base; every object completed
    ("complete_temp", 3, 3),  # in the second batch, after the first batch finished
], ids=["begin", "upload-into-temp", "complete", "copy-from-temp", "second-batch"])
def test_a_failure_among_temporary_objects_leaves_no_upload_and_no_temporary_object(
        s3_client, bucket_pair, watched, stores, operation, succeed, completed_before):
    source, destination = bucket_pair
    put_objects(s3_client, source, WITH_TEMPS)
    stores.append((operation, succeed, False))

    with pytest.raises(InjectedFailure, match=f"injected failure in {operation}"):
        build_archive(s3_client, source, "p/", destination, "out.zip", TWO_BATCHES,
                      threads=4)

    plan = watched.plans[-1]
    assert [temp_kinds_of(b) for b in plan.batches] == [["lead-base", "lead", "tail"],
                                                        ["tail"]]
    assert plan.batches[0].probes and not plan.batches[1].probes
    store = stores[1]
    assert len(store.completed) == completed_before
    assert len(store.begun) >= max(1, completed_before)
    if operation in ("complete_temp", "copy_temp"):
        assert store.probes == 1, "the probe upload existed when the batch failed"
    if completed_before == 3 and operation == "complete_temp":
        assert sorted(store.completed) == [0, 1, 2] and 3 in store.begun
    assert_upload_aborted(s3_client, watched)


def temp_kinds_of(batch) -> list[str]:
    return [t.kind for t in batch.temps]


def test_under_head_stream_a_failed_copy_aborts_a_run_without_temporary_objects(
        s3_client, bucket_pair, watched, stores):
    # The same source under head-stream: no temporary object and no probe, and a failure in
    # the archive's copies aborts the upload.
    source, destination = bucket_pair
    put_objects(s3_client, source, WITH_TEMPS)
    stores.append(("copy_source", 1, False))
    settings = PlanSettings(batch_count=2, upload_part_size=5 * MiB, strategy=HEAD_STREAM)

    with pytest.raises(InjectedFailure):
        build_archive(s3_client, source, "p/", destination, "out.zip", settings, threads=4)

    plan = watched.plans[-1]
    assert plan.temps() == [] and not any(b.probes for b in plan.batches)
    assert not any(isinstance(p.source, TempRange) for p in plan.archive_parts())
    assert_upload_aborted(s3_client, watched)
