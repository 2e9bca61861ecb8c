"""`make demo`: a local S3 server, a demo data set, the job through `dagster job execute`,
then every entry of the archive checked against its source object.

Run with `python -m s3zip_dagster.demo [--extra-gib N]`. Everything lives under .local/demo/
"""

import argparse
import hashlib
import logging
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from botocore.exceptions import ClientError

from .core.limits import MiB
from .dagster_home import dagster_environment, prepare_dagster_home
from .local_s3 import LocalS3, free_ports
from .resources import (
    DEMO_DESTINATION_BUCKET,
    DEMO_DESTINATION_KEY,
    DEMO_SOURCE_BUCKET,
    DEMO_SOURCE_PREFIX,
)

log = logging.getLogger("s3zip_dagster.demo")

LOCAL = Path(".local")
SMALL_FILES = 240  # real files from the standard library, in their folders


def demo_objects(seed: int = 2026, extra_gib: int = 0) -> dict[str, bytes]:
    """The demo data set: key -> bytes, about 545 MB in 218 objects, plus `extra_gib` GiB
    of 256 MiB objects for a larger run."""
    rng = random.Random(seed)
    objects: dict[str, bytes] = {}

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for folder in ("json", "email", "asyncio", "http", "importlib", "logging", "xml",
                   "concurrent", "urllib", "unittest", "sqlite3", "zoneinfo", "tomllib"):
        for path in sorted((stdlib / folder).rglob("*.py")):
            if len(objects) >= SMALL_FILES:
                break
            objects[f"{DEMO_SOURCE_PREFIX}stdlib/{path.relative_to(stdlib)}"] = path.read_bytes()

    for i in range(20):
        size = rng.randint(5 * MiB, 10 * MiB)
        objects[f"{DEMO_SOURCE_PREFIX}medium/part-{i:03d}.bin"] = rng.randbytes(size)
    for i, size_mib in enumerate((16, 24, 40, 64, 96, 128)):
        objects[f"{DEMO_SOURCE_PREFIX}large/blob-{i}.bin"] = rng.randbytes(size_mib * MiB)

    for i in range(extra_gib * 4):
        halves = rng.randbytes(128 * MiB), rng.randbytes(128 * MiB)  # randbytes caps at 2 Gbit
        objects[f"{DEMO_SOURCE_PREFIX}extra/chunk-{i:04d}.bin"] = b"".join(halves)

    objects[f"{DEMO_SOURCE_PREFIX}names/Grüße aus Köln.txt"] = "Grüße!\n".encode()
    greeting = "こんにちは\n".encode()
    objects[f"{DEMO_SOURCE_PREFIX}names/日本語のファイル.txt"] = greeting
    objects[f"{DEMO_SOURCE_PREFIX}names/a+b %20 c#1?.txt"] = b"odd characters\n"
    objects[f"{DEMO_SOURCE_PREFIX}names/naïve café.bin"] = rng.randbytes(6 * MiB)
    objects[f"{DEMO_SOURCE_PREFIX}empty.txt"] = b""
    objects[f"{DEMO_SOURCE_PREFIX}empty-folder/"] = b""
    return objects


def ensure_bucket(client, bucket: str) -> bool:
    """Create the bucket unless it exists; return True when it was created."""
    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    client.create_bucket(Bucket=bucket)
    return True


def upload_objects(client, bucket: str, objects: dict[str, bytes]) -> None:
    ensure_bucket(client, bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      objects.items()))


def check_archive(path: Path, digests: dict[str, bytes], prefix: str) -> int:
    """Compare every entry with the SHA-256 of its source object; return the entry count.
    Reading an entry through zipfile also checks its CRC-32."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        expected = {key[len(prefix):] for key in digests}
        if names != expected:
            raise SystemExit(f"archive names differ: missing {sorted(expected - names)[:5]}, "
                             f"extra {sorted(names - expected)[:5]}")
        for key, digest in digests.items():
            sha = hashlib.sha256()
            with archive.open(key[len(prefix):]) as entry:
                while chunk := entry.read(1 << 22):
                    sha.update(chunk)
            if sha.digest() != digest:
                raise SystemExit(f"entry {key[len(prefix):]!r} differs from its source {key}")
        return len(names)


def run_figures(dagster_home: Path) -> dict:
    """Figures of the latest run, read from the Dagster instance the CLI wrote to."""
    os.environ["DAGSTER_HOME"] = str(dagster_home.resolve())
    from dagster import AssetKey, DagsterEventType, DagsterInstance

    with DagsterInstance.get() as instance:
        run = instance.get_runs(limit=1)[0]
        records = instance.all_logs(run.run_id)
        events = [r.dagster_event for r in records if r.dagster_event]
        steps = sum(1 for e in events if e.event_type == DagsterEventType.STEP_START)
        peaks = []
        for record in records:
            event = record.dagster_event
            if event and event.event_type == DagsterEventType.STEP_OUTPUT:
                meta = event.event_specific_data.metadata
                if "peak_memory_bytes" in meta:
                    peaks.append(meta["peak_memory_bytes"].value)
        figures = {"status": run.status.value, "steps": steps,
                   "peak_batch_memory": max(peaks) if peaks else 0}
        for asset in ("zip_plan", "archive"):  # the archive's figures win where both have one
            event = instance.get_latest_materialization_event(AssetKey(asset))
            figures.update({k: v.value for k, v in
                            event.asset_materialization.metadata.items()})
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--extra-gib", type=int, default=0,
                        help="add this many GiB of 256 MiB objects, for a larger run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    root = LOCAL / "demo"
    shutil.rmtree(root, ignore_errors=True)
    dagster_home = prepare_dagster_home(root / "dagster_home")

    server = LocalS3(root / "s3", free_ports()).start()
    try:
        client = server.client()
        objects = demo_objects(extra_gib=args.extra_gib)
        total = sum(len(v) for v in objects.values())
        log.info("uploading the demo set: %d objects, %d MB", len(objects), total // 10**6)
        upload_objects(client, DEMO_SOURCE_BUCKET, objects)
        digests = {key: hashlib.sha256(body).digest() for key, body in objects.items()}
        del objects
        client.create_bucket(Bucket=DEMO_DESTINATION_BUCKET)

        env = {**os.environ, **server.environment(), **dagster_environment(dagster_home)}
        command = [str(Path(sys.executable).parent / "dagster"), "job", "execute",
                   "-m", "s3zip_dagster.definitions", "-j", "zip_archive_job"]
        log.info("running: %s", " ".join(command))
        started = time.monotonic()
        subprocess.run(command, env=env, check=True, stdout=open(root / "dagster.log", "wb"),
                       stderr=subprocess.STDOUT)
        wall = time.monotonic() - started

        path = root / "demo.zip"
        client.download_file(DEMO_DESTINATION_BUCKET, DEMO_DESTINATION_KEY, str(path))
        size = path.stat().st_size
        checked = check_archive(path, digests, DEMO_SOURCE_PREFIX)
        client.close()
        figures = run_figures(dagster_home)

        through = figures["bytes_through_workers"]
        print()
        print(f"archive        {figures['url']} ({server.endpoint_url})")
        print(f"size           {size:,} B, CRC-32 {figures['crc32']}")
        print(f"entries        {checked} (each checked against its source object)")
        print(f"parts          {figures['copy_parts']} copy parts, "
              f"{figures['upload_parts']} upload parts ({figures['strategy']}: "
              f"{figures['temporary_objects']} temporary objects, "
              f"{figures['extra_bytes_copied_by_s3']:,} B of extra copying inside S3)")
        print(f"through us     {through:,} B = {through / size:.2%} of the archive")
        print(f"dagster steps  {figures['steps']}, peak memory of a batch process "
              f"{figures['peak_batch_memory'] / 2**20:.0f} MiB")
        print(f"wall time      {wall:.1f} s for `dagster job execute` "
              f"({figures['seconds']:.1f} s from upload start to complete)")
        print(f"run log        {root / 'dagster.log'}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
