"""Removing what killed runs left behind, on SeaweedFS: temporary objects and multipart
uploads under the scratch prefix, and old uploads of the archive's key. A killed run cannot
clean up after itself; `clean_scratch`, `python -m s3zip_dagster.cleanup` and the Dagster
cleanup job can, and spare what is younger than the age given (it may belong to a run still
going) and everything outside the scratch prefix."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from dagster_aws.s3 import S3Resource

from s3zip_dagster.cleanup import cleanup_job
from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.plan import DEFAULT_SCRATCH_PREFIX
from s3zip_dagster.core.s3 import clean_scratch
from s3zip_dagster.local_s3 import ACCESS_KEY, REGION, SECRET_KEY
from s3zip_dagster.resources import ArchiveRequest

from .archive_checks import payload, put_objects, scratch_objects, uploads_left

ROOT = Path(__file__).resolve().parents[1]  # the worktree: its package is the one imported
ARCHIVE_KEY = "out.zip"
# S3 keeps times in whole seconds: waiting this long makes what was just written older
# than a cleanup's "now" for an age of 0.
TIMESTAMP_GRAIN = 1.1


def leave_behind(client, bucket: str, run_id: str = "killed0run") -> dict[str, list[str]]:
    """What a killed run leaves, written directly: a completed temporary object, the upload
    of one still being assembled (with a part in it), a probe upload and the archive's own
    upload; and what must survive every cleanup. Returns the keys by kind."""
    folder = f"{DEFAULT_SCRATCH_PREFIX}{run_id}/"
    put_objects(client, bucket, {f"{folder}tail-000000": payload(1000, "tail")})
    lead = client.create_multipart_upload(Bucket=bucket, Key=f"{folder}lead-000001")
    client.upload_part(Bucket=bucket, Key=f"{folder}lead-000001", PartNumber=1,
                       UploadId=lead["UploadId"], Body=payload(1000, "lead"))
    client.create_multipart_upload(Bucket=bucket, Key=f"{folder}probe-0123456789ab")
    client.create_multipart_upload(Bucket=bucket, Key=ARCHIVE_KEY)

    survivors = {"data/a.txt": b"a\n", "old.zip": b"an older archive",
                 f"{DEFAULT_SCRATCH_PREFIX.rstrip('/')}-not-scratch.txt": b"beside it\n"}
    put_objects(client, bucket, survivors)
    client.create_multipart_upload(Bucket=bucket, Key="another-archive.zip")
    return {
        "objects": [f"{folder}tail-000000"],
        "uploads": sorted([f"{folder}lead-000001", f"{folder}probe-0123456789ab",
                           ARCHIVE_KEY]),
        "surviving_objects": sorted(survivors),
        "surviving_uploads": ["another-archive.zip"],
    }


def all_objects(client, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def assert_cleaned(client, bucket: str, left: dict[str, list[str]]) -> None:
    assert scratch_objects(client, bucket) == []
    assert sorted(uploads_left(client, bucket)) == left["surviving_uploads"]
    assert all_objects(client, bucket) == left["surviving_objects"]


def test_clean_scratch_removes_what_a_killed_run_left(s3_client, bucket_pair):
    bucket = bucket_pair[1]
    left = leave_behind(s3_client, bucket)
    assert sorted(uploads_left(s3_client, bucket)) == sorted(
        left["uploads"] + left["surviving_uploads"])
    time.sleep(TIMESTAMP_GRAIN)

    counts = clean_scratch(s3_client, bucket, DEFAULT_SCRATCH_PREFIX, older_than_seconds=0,
                           archive_key=ARCHIVE_KEY)

    assert counts == (len(left["uploads"]), len(left["objects"]))
    assert_cleaned(s3_client, bucket, left)


def test_a_young_temporary_object_survives_a_cleanup_with_a_large_age(s3_client, bucket_pair):
    bucket = bucket_pair[1]
    left = leave_behind(s3_client, bucket)
    before = (all_objects(s3_client, bucket), sorted(uploads_left(s3_client, bucket)))

    counts = clean_scratch(s3_client, bucket, DEFAULT_SCRATCH_PREFIX,
                           older_than_seconds=3600, archive_key=ARCHIVE_KEY)

    assert counts == (0, 0)
    assert (all_objects(s3_client, bucket), sorted(uploads_left(s3_client, bucket))) == before
    assert scratch_objects(s3_client, bucket) == left["objects"]


def cleanup_command(local_s3, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **local_s3.environment(), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "s3zip_dagster.cleanup", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_cleanup_command_removes_old_leftovers_and_spares_young_ones(
        local_s3, s3_client, bucket_pair):
    bucket = bucket_pair[1]
    left = leave_behind(s3_client, bucket)
    common = ["--bucket", bucket, "--endpoint-url", local_s3.endpoint_url,
              "--archive-key", ARCHIVE_KEY]

    young = cleanup_command(local_s3, *common)  # the default age: 24 hours
    assert young.returncode == 0, young.stderr[-3000:]
    assert "aborted 0 uploads, deleted 0 objects" in young.stdout
    assert scratch_objects(s3_client, bucket) == left["objects"]
    time.sleep(TIMESTAMP_GRAIN)

    old = cleanup_command(local_s3, *common, "--older-than-hours", "0")

    assert old.returncode == 0, old.stderr[-3000:]
    assert f"aborted {len(left['uploads'])} uploads, deleted 1 objects" in old.stdout
    assert_cleaned(s3_client, bucket, left)


def test_the_cleanup_job_removes_old_leftovers(local_s3, s3_client, bucket_pair):
    bucket = bucket_pair[1]
    left = leave_behind(s3_client, bucket)
    time.sleep(TIMESTAMP_GRAIN)
    resources = {
        "s3": S3Resource(endpoint_url=local_s3.endpoint_url, region_name=REGION,
                         aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY),
        "archive_request": ArchiveRequest(destination_bucket=bucket,
                                          destination_key=ARCHIVE_KEY),
    }

    result = cleanup_job.execute_in_process(
        resources=resources,
        run_config={"ops": {"clean_up_scratch": {"config": {"older_than_hours": 0}}}})

    assert result.success
    (materialized,) = [e for e in result.all_node_events if e.is_successful_output]
    metadata = {k: v.value for k, v in materialized.step_output_data.metadata.items()}
    assert metadata == {"uploads_aborted": len(left["uploads"]), "objects_deleted": 1}
    assert_cleaned(s3_client, bucket, left)


KILLED_RUN = textwrap.dedent("""
    import os, sys
    import boto3
    from s3zip_dagster.core import runner
    from s3zip_dagster.core.plan import ZERO_STREAM, PlanSettings
    from s3zip_dagster.core.s3 import S3PartStore

    real_complete = S3PartStore.complete_temp
    completed = []

    def complete_then_die(self, temp, parts, crc):
        if completed:  # the process dies: no except, no finally runs
            sys.stdout.flush()
            os._exit(9)
        real_complete(self, temp, parts, crc)
        completed.append(temp.index)

    S3PartStore.complete_temp = complete_then_die
    client = boto3.client("s3", endpoint_url=os.environ["S3ZIP_S3_ENDPOINT_URL"])
    runner.build_archive(client, sys.argv[1], "p/", sys.argv[2], "out.zip",
                         PlanSettings(batch_count=2, strategy=ZERO_STREAM))
""")


def test_what_a_run_killed_mid_batch_leaves_is_removed_by_the_cleanup(
        local_s3, s3_client, bucket_pair):
    source, destination = bucket_pair
    put_objects(s3_client, source, {
        "p/0-big.bin": payload(11 * MiB, "b0"), "p/1.txt": b"small\n",
        "p/2-big.bin": payload(11 * MiB, "b2"), "p/3.txt": b"last\n"})
    env = {**os.environ, **local_s3.environment(), "PYTHONPATH": str(ROOT)}

    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, source, destination],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    assert killed.returncode == 9, killed.stderr[-3000:]
    # Died completing the lead, after its lead-base and the probe of the range the second
    # batch copies into its tail.
    uploads = uploads_left(s3_client, destination)
    names = sorted(key.rsplit("/", 1)[-1] for key in uploads)
    assert len(names) == 3 and names[:2] == ["lead-000001", ARCHIVE_KEY], uploads
    assert names[2].startswith("probe-"), uploads
    (temp,) = scratch_objects(s3_client, destination)
    assert temp.endswith("/lead-base-000000")
    time.sleep(TIMESTAMP_GRAIN)

    aborted, deleted = clean_scratch(s3_client, destination, DEFAULT_SCRATCH_PREFIX, 0,
                                     archive_key=ARCHIVE_KEY)

    assert (aborted, deleted) == (3, 1)
    assert uploads_left(s3_client, destination) == []
    assert all_objects(s3_client, destination) == []


@pytest.mark.parametrize("prefix", ["", "/", ".s3zip-scratch"])
def test_clean_scratch_refuses_a_prefix_that_is_not_a_folder(s3_client, bucket_pair, prefix):
    bucket = bucket_pair[1]
    put_objects(s3_client, bucket, {"keep.txt": b"keep\n"})

    with pytest.raises(ValueError, match="refusing to clean"):
        clean_scratch(s3_client, bucket, prefix, 0)

    assert all_objects(s3_client, bucket) == ["keep.txt"]
