"""The contenders: each builds one ZIP archive of s3://source_bucket/prefix.

Each module has `run(client, job) -> dict`, which builds the archive at
s3://job.destination_bucket/job.destination_key and returns figures of its own (plan
figures, for instance); the harness measures time, bytes, requests and memory around it.
"""

from dataclasses import dataclass
from pathlib import Path

NAMES = {
    "a": "streaming (stream-zip)",
    "b": "seed pairing",
    "c": "core head-stream",
    "d": "core zero-stream",
    "e": "zero-stream via dagster",
}


@dataclass(frozen=True)
class Job:
    """One archive to build, as the worker process receives it."""

    contender: str
    source_bucket: str
    prefix: str
    destination_bucket: str
    destination_key: str
    threads: int
    workdir: Path
    s3_root: Path  # the local S3 server's folder and ports, for clients and environment
    ports: dict[str, int]


def module_of(contender: str):
    """The module that implements a contender."""
    if contender == "a":
        from . import streaming as module
    elif contender == "b":
        from . import pairing as module
    elif contender in ("c", "d"):
        from . import core as module
    elif contender == "e":
        from . import dagster_cli as module
    else:
        raise ValueError(f"no contender {contender!r}; choose from {', '.join(NAMES)}")
    return module
