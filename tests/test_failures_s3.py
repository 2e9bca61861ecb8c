"""A run that fails after its upload began leaves nothing behind, on SeaweedFS: the error
reaches the caller, the multipart upload is aborted and no archive object appears.

Two kinds of failure: a source object that changes between the listing and the copy or
read of its data, and a failure injected into a part store in the middle of a batch."""

import re
import threading
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

from s3zip_dagster.core import runner
from s3zip_dagster.core.errors import SourceChangedError
from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.plan import DataPiece, Plan, PlanSettings
from s3zip_dagster.core.runner import build_archive
from s3zip_dagster.core.s3 import S3PartStore, UploadTarget

from .archive_checks import assert_nothing_written, payload, put_objects


@dataclass
class Watched:
    """What the runner planned and which uploads it began."""

    plans: list[Plan] = field(default_factory=list)
    targets: list[UploadTarget] = field(default_factory=list)

    def copied_keys(self) -> set[str]:
        plan = self.plans[-1]
        return {plan.entries[c.entry].key
                for b in plan.batches for u in b.units for c in u.copies}

    def read_keys(self) -> set[str]:
        plan = self.plans[-1]
        pieces = [p for b in plan.batches for u in b.units for p in u.upload.pieces]
        return {plan.entries[p.entry].key for p in [*pieces, *plan.final.pieces]
                if isinstance(p, DataPiece)}


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
    """The run began exactly one upload, and S3 no longer knows it."""
    assert len(watched.targets) == 1
    target = watched.targets[0]
    with pytest.raises(ClientError) as error:
        client.list_parts(Bucket=target.bucket, Key=target.key, UploadId=target.upload_id)
    assert error.value.response["Error"]["Code"] == "NoSuchUpload"
    assert_nothing_written(client, target.bucket)


# The first entry fills the first upload part, so the big object is copied whole: no byte
# of it is read, and only the copy's ETag condition can notice the change.
SOURCE = {
    "p/a-small.txt": payload(5 * MiB + 100, "first"),
    "p/b-big.bin": payload(11 * MiB, "big"),
    "p/c-small.txt": b"another small\n" * 100,
}


@pytest.mark.parametrize("change", ["overwritten", "deleted"])
@pytest.mark.parametrize("key", ["p/b-big.bin", "p/c-small.txt"], ids=["copied", "read"])
def test_an_object_changed_after_the_listing_fails_the_run_and_aborts_the_upload(
        s3_client, bucket_pair, monkeypatch, watched, key, change):
    source, destination = bucket_pair
    put_objects(s3_client, source, SOURCE)
    real_list = runner.list_source

    def list_then_change(*args, **kwargs):
        listing = real_list(*args, **kwargs)
        if change == "deleted":
            s3_client.delete_object(Bucket=source, Key=key)
        else:  # the same size, so only the ETag tells the versions apart
            body = bytes(b ^ 0xFF for b in SOURCE[key][:64]) + SOURCE[key][64:]
            s3_client.put_object(Bucket=source, Key=key, Body=body)
        return listing

    monkeypatch.setattr(runner, "list_source", list_then_change)

    with pytest.raises(SourceChangedError, match=re.escape(f"s3://{source}/{key} ")):
        build_archive(s3_client, source, "p/", destination, "out.zip")

    if key == "p/b-big.bin":
        assert key in watched.copied_keys() and key not in watched.read_keys()
    else:
        assert key in watched.read_keys() and key not in watched.copied_keys()
    assert_upload_aborted(s3_client, watched)


class InjectedFailure(Exception):
    """Stands for any failure of a worker: a network error, a crash, a throttled call."""


def failing_store(operation: str, succeed: int, part_number: int | None = None):
    """An S3PartStore whose `operation` fails after `succeed` calls, or on `part_number`."""

    class FailingStore(S3PartStore):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.done: list[int] = []  # part numbers S3 accepted before the failure
            self._calls = 0
            self._calls_lock = threading.Lock()

        def _maybe_fail(self, number: int) -> None:
            with self._calls_lock:
                self._calls += 1
                fail = number == part_number or (part_number is None
                                                 and self._calls > succeed)
            if fail:
                raise InjectedFailure(f"injected failure in {operation} of part {number}")

        def upload_part(self, number, body, crc):
            if operation == "upload_part":
                self._maybe_fail(number)
            etag = super().upload_part(number, body, crc)
            self.done.append(number)
            return etag

        def copy_part(self, part, entry):
            if operation == "copy_part":
                self._maybe_fail(part.number)
            result = super().copy_part(part, entry)
            self.done.append(part.number)
            return result

    return FailingStore


# One batch of about eight upload parts and three copy parts, in between the small ones.
MANY_PARTS = {
    **{f"p/{i:02}.bin": payload(MiB + 7, i) for i in range(24)},
    **{f"p/{i:02}-big.bin": payload(10 * MiB + 1, i) for i in (5, 12, 19)},
}
ONE_BATCH = PlanSettings(batch_count=1, upload_part_size=5 * MiB)


@pytest.mark.parametrize(("operation", "succeed", "final"), [
    ("upload_part", 2, False),
    ("copy_part", 1, False),
    ("upload_part", 0, True),
], ids=["upload-part", "copy-part", "final-part"])
def test_a_failure_in_the_middle_of_a_batch_propagates_and_aborts_the_upload(
        s3_client, bucket_pair, monkeypatch, watched, operation, succeed, final):
    source, destination = bucket_pair
    put_objects(s3_client, source, MANY_PARTS)
    stores: list[S3PartStore] = []

    def make_store(*args, **kwargs):
        final_number = watched.plans[-1].final.number if final else None
        stores.append(failing_store(operation, succeed, final_number)(*args, **kwargs))
        return stores[-1]

    monkeypatch.setattr(runner, "S3PartStore", make_store)

    with pytest.raises(InjectedFailure, match=f"injected failure in {operation}"):
        build_archive(s3_client, source, "p/", destination, "out.zip", ONE_BATCH, threads=4)

    plan = watched.plans[-1]
    assert len(plan.batches) == 1
    assert plan.copy_parts == 3 and plan.upload_parts >= 6
    done = stores[0].done
    if final:  # every other part was in S3 when the final part failed
        assert sorted(done) == list(range(1, plan.part_count))
    else:  # the failure came with parts of the batch made and parts still to make
        assert succeed <= len(done) < plan.part_count - 1
    assert_upload_aborted(s3_client, watched)
