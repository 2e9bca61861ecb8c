"""The Dagster layer end to end on the local S3 server: the job through the real `dagster`
CLI (multiprocess and in-process executors), in-process materialization, definitions
validation, and failures that must leave neither a multipart upload nor an archive.
"""

import io
import os
import random
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, materialize
from dagster_aws.s3 import S3Resource

from s3zip_dagster import assets
from s3zip_dagster.core.errors import SourceChangedError
from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.plan import DEFAULT_SCRATCH_PREFIX, STRATEGIES, ZERO_STREAM
from s3zip_dagster.dagster_home import dagster_environment, prepare_dagster_home
from s3zip_dagster.definitions import ZIP_JOB_NAME
from s3zip_dagster.local_s3 import ACCESS_KEY, REGION, SECRET_KEY
from s3zip_dagster.resources import ArchiveRequest

from .injection import failing_store
from .readers import check_with_all_readers

ROOT = Path(__file__).resolve().parents[1]  # the worktree: its package is the one imported
DAGSTER = Path(sys.executable).parent / "dagster"
MODULE = "s3zip_dagster.definitions"
PREFIX = "mixed/"
KEY = "out/mixed.zip"
BATCHES = 2
FIXED_STEPS = 5  # source_listing, zip_plan, begin upload, fan out, complete; + one per batch
CLI_TIMEOUT = 300


def mixed_objects() -> dict[str, bytes]:
    """Small objects, two big objects, non-ASCII names, an empty object and a folder marker.

    Under zero-stream each big object starts a block of its own: the first reaches the
    archive through a lead object (built on a lead-base), the second after a tail object
    that carries the end of the first. Two blocks, two batches; the first batch probes the
    CRC-32 of the range the second copies into its tail."""
    rng = random.Random(7)
    return {
        f"{PREFIX}a-small.txt": b"small\n",
        f"{PREFIX}b-big.bin": rng.randbytes(12 * MiB + 3),
        f"{PREFIX}c/Grüße aus Köln ü.txt": "Grüße, ü!\n".encode() * 100,
        f"{PREFIX}d-empty.txt": b"",
        f"{PREFIX}e-folder/": b"",
        f"{PREFIX}f/日本語 a+b %20 #1?.json": b'{"k": 1}\n' * 500,
        f"{PREFIX}g-bigger.bin": rng.randbytes(17 * MiB + 1),
        f"{PREFIX}h-tail.txt": b"the last entry\n" * 64,
    }


@pytest.fixture
def mixed_source(s3_client, bucket_pair) -> tuple[str, str, dict[str, bytes]]:
    """The mixed set uploaded to a fresh source bucket; returns (source, destination,
    objects)."""
    source, destination = bucket_pair
    objects = mixed_objects()
    for key, body in objects.items():
        s3_client.put_object(Bucket=source, Key=key, Body=body)
    return source, destination, objects


def request_config(source: str, destination: str, **extra) -> dict:
    return {"source_bucket": source, "source_prefix": PREFIX,
            "destination_bucket": destination, "destination_key": KEY,
            "batch_count": BATCHES, "strategy": ZERO_STREAM, **extra}


def write_run_config(path: Path, source: str, destination: str, execution: dict | None = None
                     ) -> Path:
    config: dict = {"resources": {"archive_request": {"config":
                                                      request_config(source, destination)}}}
    if execution is not None:
        config["execution"] = execution
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def run_cli(args: list[str], home: Path, local_s3) -> subprocess.CompletedProcess:
    """The dagster CLI as a user runs it, against the local S3 server and instance `home`."""
    env = {**os.environ, **local_s3.environment(), **dagster_environment(home),
           "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(DAGSTER), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=CLI_TIMEOUT)


def execute_job(tmp_path: Path, local_s3, source: str, destination: str,
                execution: dict | None = None) -> tuple[Path, subprocess.CompletedProcess]:
    home = prepare_dagster_home(tmp_path / "dagster_home")
    config = write_run_config(tmp_path / "run.yaml", source, destination, execution)
    result = run_cli(["job", "execute", "-m", MODULE, "-j", ZIP_JOB_NAME, "-c", str(config)],
                     home, local_s3)
    return home, result


def error_text(error) -> str:
    """A SerializableErrorInfo with its causes and contexts, as one string."""
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        if error.context is not None:
            parts.append(error_text(error.context))
        error = error.cause
    return "\n".join(parts)


class RunView:
    """A run recorded in an instance (the only one unless run_id is given), read back from
    its event log the way the UI reads it."""

    def __init__(self, instance: DagsterInstance, run_id: str | None = None) -> None:
        runs = instance.get_runs()
        if run_id is None:
            assert len(runs) == 1, [r.run_id for r in runs]
            run_id = runs[0].run_id
        run = instance.get_run_by_id(run_id)
        assert run is not None
        self.run = run
        self.events = [r.dagster_event for r in instance.all_logs(run_id) if r.dagster_event]

    @property
    def status(self) -> DagsterRunStatus:
        return self.run.status

    def of_type(self, event_type: DagsterEventType) -> list:
        return [e for e in self.events if e.event_type == event_type]

    def started_steps(self) -> list[str]:
        return [e.step_key for e in self.of_type(DagsterEventType.STEP_START)]

    def step_pids(self) -> set[int]:
        return {e.pid for e in self.of_type(DagsterEventType.STEP_START)}

    def failures(self) -> dict[str, str]:
        """step key -> the whole error chain of its failure."""
        return {e.step_key: error_text(e.step_failure_data.error)
                for e in self.of_type(DagsterEventType.STEP_FAILURE)}

    def metadata(self, asset: str) -> dict:
        found = [e.event_specific_data.materialization
                 for e in self.of_type(DagsterEventType.ASSET_MATERIALIZATION)
                 if e.event_specific_data.materialization.asset_key == AssetKey(asset)]
        assert len(found) == 1, f"{len(found)} materializations of {asset}"
        return {k: v.value for k, v in found[0].metadata.items()}


def run_view(home: Path) -> RunView:
    with DagsterInstance.from_config(str(home)) as instance:
        return RunView(instance)


def check_archive(s3_client, destination: str, objects: dict[str, bytes], tmp_path: Path,
                  java_classes: Path) -> bytes:
    """Download the archive; every reader must accept it, and each entry must hold the bytes
    of its source object. Returns the archive's bytes."""
    path = tmp_path / "archive.zip"
    s3_client.download_file(destination, KEY, str(path))
    expected = {k[len(PREFIX):]: (len(v), zlib.crc32(v)) for k, v in objects.items()}
    check_with_all_readers(path, java_classes, expected)

    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for key, body in objects.items():
            assert archive.read(key[len(PREFIX):]) == body, key
        folder = archive.getinfo("e-folder/")
        assert folder.is_dir() and folder.external_attr >> 16 == 0o40755
    return data


def assert_nothing_left(s3_client, destination: str) -> None:
    """No archive object and no multipart upload (with its parts) in the destination."""
    assert_no_upload_in_progress(s3_client, destination)
    assert s3_client.list_objects_v2(Bucket=destination).get("KeyCount") == 0


def archive_part_count(s3_client, destination: str) -> int:
    head = s3_client.head_object(Bucket=destination, Key=KEY, PartNumber=1)
    return head["PartsCount"]


def test_cli_job_builds_the_archive_with_few_multiprocess_steps(
        local_s3, s3_client, mixed_source, tmp_path, java_classes):
    source, destination, objects = mixed_source

    home, result = execute_job(tmp_path, local_s3, source, destination)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = check_archive(s3_client, destination, objects, tmp_path, java_classes)

    view = run_view(home)
    assert view.status == DagsterRunStatus.SUCCESS
    plan = view.metadata("zip_plan")
    assert plan["batches"] == BATCHES
    assert plan["strategy"] == "zero-stream"
    assert plan["copy_parts"] == 3 and plan["temporary_objects"] == 3
    assert plan["bytes_through_workers"] < 32 * 1024, "no byte of a big object"
    meta = view.metadata("archive")
    assert meta["url"] == f"s3://{destination}/{KEY}"
    assert meta["entries"] == len(objects)
    assert meta["archive_bytes"] == len(data)
    assert meta["crc32"] == f"{zlib.crc32(data):08x}"
    assert meta["parts"] == archive_part_count(s3_client, destination)
    assert meta["copy_parts"] + meta["upload_parts"] == meta["parts"]

    steps = view.started_steps()
    assert len(steps) == FIXED_STEPS + BATCHES
    assert sorted(s for s in steps if s.startswith("archive.run_archive_batch")) == [
        f"archive.run_archive_batch[batch_{i}]" for i in range(BATCHES)]
    assert len(view.step_pids()) == len(steps), "each step should run in its own process"
    assert_no_upload_in_progress(s3_client, destination)
    assert_no_temporary_object(s3_client, destination)


def assert_no_upload_in_progress(s3_client, destination: str) -> None:
    uploads = s3_client.list_multipart_uploads(Bucket=destination).get("Uploads", [])
    assert uploads == [], uploads


def assert_no_temporary_object(s3_client, destination: str) -> None:
    listed = s3_client.list_objects_v2(Bucket=destination, Prefix=DEFAULT_SCRATCH_PREFIX)
    assert listed.get("KeyCount") == 0, [o["Key"] for o in listed.get("Contents", [])]


def local_resources(local_s3, source: str, destination: str, **extra) -> dict:
    return {
        "s3": S3Resource(endpoint_url=local_s3.endpoint_url, region_name=REGION,
                         aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY),
        "archive_request": ArchiveRequest(**request_config(source, destination, **extra)),
    }


ALL_ASSETS = [assets.source_listing, assets.zip_plan, assets.archive]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_in_process_materialization_builds_the_archive(
        local_s3, s3_client, mixed_source, tmp_path, java_classes, strategy):
    source, destination, objects = mixed_source

    with DagsterInstance.ephemeral() as instance:
        result = materialize(ALL_ASSETS, instance=instance,
                             resources=local_resources(local_s3, source, destination,
                                                       strategy=strategy))
        assert result.success
        summary = result.output_for_node("archive")
        view = RunView(instance, result.run_id)
        plan = view.metadata("zip_plan")

    data = check_archive(s3_client, destination, objects, tmp_path, java_classes)
    assert summary.url == f"s3://{destination}/{KEY}"
    assert (summary.size, summary.crc32) == (len(data), zlib.crc32(data))
    assert summary.entries == len(objects)
    assert summary.parts == archive_part_count(s3_client, destination)
    assert len(view.started_steps()) == FIXED_STEPS + BATCHES
    assert view.step_pids() == {os.getpid()}
    assert plan["strategy"] == strategy
    assert (plan["temporary_objects"] > 0) == (strategy == ZERO_STREAM)
    assert_no_upload_in_progress(s3_client, destination)
    assert_no_temporary_object(s3_client, destination)


def test_definitions_validate_through_the_cli(local_s3, tmp_path):
    home = prepare_dagster_home(tmp_path / "dagster_home")

    result = run_cli(["definitions", "validate", "-m", MODULE], home, local_s3)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Validation successful" in result.stdout + result.stderr


def test_missing_source_bucket_fails_the_listing_and_writes_nothing(
        local_s3, s3_client, bucket_pair, tmp_path):
    _, destination = bucket_pair
    missing = f"{destination}-no-such-bucket"

    home, result = execute_job(tmp_path, local_s3, missing, destination)

    assert result.returncode != 0
    view = run_view(home)
    assert view.status == DagsterRunStatus.FAILURE
    assert view.started_steps() == ["source_listing"]
    failures = view.failures()
    assert list(failures) == ["source_listing"]
    assert f"source bucket s3://{missing} does not exist" in failures["source_listing"]
    assert "SourceError" in failures["source_listing"]
    assert_nothing_left(s3_client, destination)


def test_source_deleted_after_planning_fails_a_batch_and_aborts_the_upload(
        local_s3, s3_client, mixed_source, monkeypatch):
    source, destination, _ = mixed_source
    deleted = f"{PREFIX}g-bigger.bin"  # copied by S3 in the second batch, after the first ran
    begin = assets.begin_upload

    def begin_then_delete(client, bucket, key):
        target = begin(client, bucket, key)
        s3_client.delete_object(Bucket=source, Key=deleted)
        return target

    monkeypatch.setattr(assets, "begin_upload", begin_then_delete)

    with DagsterInstance.ephemeral() as instance:
        result = materialize(ALL_ASSETS, instance=instance, raise_on_error=False,
                             resources=local_resources(local_s3, source, destination))
        view = RunView(instance, result.run_id)

    assert not result.success
    assert view.status == DagsterRunStatus.FAILURE
    succeeded = [e.step_key for e in view.of_type(DagsterEventType.STEP_SUCCESS)]
    assert "archive.run_archive_batch[batch_0]" in succeeded, "its parts must be aborted too"
    failures = view.failures()
    assert list(failures) == ["archive.run_archive_batch[batch_1]"]
    message = failures["archive.run_archive_batch[batch_1]"]
    assert SourceChangedError.__name__ in message
    assert f"s3://{source}/{deleted} changed or was deleted after it was listed" in message
    assert "archive.complete_archive" not in view.started_steps()
    assert_nothing_left(s3_client, destination)


def test_upload_aborted_mid_run_fails_batches_with_a_message_naming_the_upload(
        local_s3, s3_client, mixed_source, monkeypatch):
    source, destination, _ = mixed_source
    begin = assets.begin_upload

    def begin_then_abort(client, bucket, key):
        target = begin(client, bucket, key)
        s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=target.upload_id)
        return target

    monkeypatch.setattr(assets, "begin_upload", begin_then_abort)

    with DagsterInstance.ephemeral() as instance:
        result = materialize(ALL_ASSETS, instance=instance, raise_on_error=False,
                             resources=local_resources(local_s3, source, destination))
        view = RunView(instance, result.run_id)

    assert view.status == DagsterRunStatus.FAILURE
    failures = view.failures()
    assert sorted(failures) == [f"archive.run_archive_batch[batch_{i}]" for i in range(BATCHES)]
    for message in failures.values():
        assert f"the multipart upload of s3://{destination}/{KEY}" in message
        assert "no longer exists" in message and "run the whole job again" in message
        assert source not in message, "the source objects are not at fault"
    assert_nothing_left(s3_client, destination)


def test_cli_run_config_selects_the_in_process_executor_and_steps_do_not_grow(
        local_s3, s3_client, mixed_source, tmp_path, java_classes):
    source, destination, objects = mixed_source
    many = {f"{PREFIX}many/n-{i:04d}.txt": f"entry {i}\n".encode() for i in range(300)}
    for key, body in many.items():
        s3_client.put_object(Bucket=source, Key=key, Body=body)
    objects = {**objects, **many}

    home, result = execute_job(tmp_path, local_s3, source, destination,
                               execution={"config": {"in_process": {}}})

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_archive(s3_client, destination, objects, tmp_path, java_classes)
    view = run_view(home)
    assert view.status == DagsterRunStatus.SUCCESS
    assert view.metadata("archive")["entries"] == len(objects)
    assert len(view.started_steps()) == FIXED_STEPS + BATCHES, "as for 8 objects"
    assert len(view.step_pids()) == 1, "in_process runs every step in the run's process"
    assert view.step_pids() != {os.getpid()}


def test_cli_batch_failure_in_a_worker_process_aborts_the_upload(
        local_s3, s3_client, mixed_source, tmp_path):
    source, destination, _ = mixed_source
    deleted = f"{PREFIX}g-bigger.bin"  # copied by S3 in the second batch only
    home = prepare_dagster_home(tmp_path / "dagster_home")
    config = str(write_run_config(tmp_path / "run.yaml", source, destination))
    planned = run_cli(["asset", "materialize", "-m", MODULE, "--select",
                       "source_listing,zip_plan", "-c", config], home, local_s3)
    assert planned.returncode == 0, planned.stdout[-3000:] + planned.stderr[-3000:]
    s3_client.delete_object(Bucket=source, Key=deleted)

    built = run_cli(["asset", "materialize", "-m", MODULE, "--select", "archive", "-c", config],
                    home, local_s3)

    assert built.returncode != 0
    with DagsterInstance.from_config(str(home)) as instance:
        view = RunView(instance, instance.get_runs(limit=1)[0].run_id)
    assert view.status == DagsterRunStatus.FAILURE
    assert len(view.step_pids()) == len(view.started_steps()), "multiprocess executor"
    failures = view.failures()
    failed = "archive.run_archive_batch[batch_1]"
    assert failed in failures
    message = failures[failed]
    assert f"s3://{source}/{deleted} changed or was deleted after it was listed" in message
    for step, other in failures.items():  # a batch still running when batch 1 aborted
        if step != failed:
            assert "no longer exists" in other and source not in other, other
    assert "archive.complete_archive" not in view.started_steps()
    assert_nothing_left(s3_client, destination)


def test_failure_among_temporary_objects_in_process_leaves_no_upload_and_no_temporary_object(
        local_s3, s3_client, mixed_source, monkeypatch):
    # Each batch step makes its own store, whose second completion of a temporary object
    # fails: the first batch fails with its lead-base completed, its lead begun and its
    # probe made; the second begins its tail, then finds the archive's upload aborted at
    # its first copy into the archive.
    source, destination, _ = mixed_source
    stores: list = []
    store_class = failing_store("complete_temp", 1)

    def make_store(*args, **kwargs):
        stores.append(store_class(*args, **kwargs))
        return stores[-1]

    monkeypatch.setattr(assets, "S3PartStore", make_store)

    with DagsterInstance.ephemeral() as instance:
        result = materialize(ALL_ASSETS, instance=instance, raise_on_error=False,
                             resources=local_resources(local_s3, source, destination))
        view = RunView(instance, result.run_id)

    assert not result.success
    assert view.status == DagsterRunStatus.FAILURE
    failures = view.failures()
    assert sorted(failures) == [f"archive.run_archive_batch[batch_{i}]" for i in range(2)]
    first, second = (failures[f"archive.run_archive_batch[batch_{i}]"] for i in range(2))
    assert "InjectedFailure" in first and "injected failure in complete_temp" in first
    assert "no longer exists" in second and source not in second
    batch_stores = [s for s in stores if s.begun]
    assert [(sorted(s.begun), s.completed) for s in batch_stores] == [([0, 1], [0]), ([2], [])]
    assert batch_stores[0].probes == 1
    assert "archive.complete_archive" not in view.started_steps()
    assert_nothing_left(s3_client, destination)
