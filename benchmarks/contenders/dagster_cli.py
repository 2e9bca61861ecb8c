"""(e): (d) run by `dagster job execute` in a subprocess, multiprocess executor.

The job is the project's own (benchmarks.dagster_defs re-exports its definitions with the
request counting hook) on a Dagster instance of its own (DAGSTER_HOME in the work folder,
telemetry off). The wall time is the whole command: process starts, the steps, the run
storage. Peak memory is sampled from /proc: the largest process of the run, and the most
all its processes held at once. Figures after the run come from the instance: Dagster
steps (STEP_START events) and the assets' metadata.
"""

import os
import subprocess
import sys
from pathlib import Path

from s3zip_dagster.core.model import ZERO_STREAM
from s3zip_dagster.dagster_home import dagster_environment, prepare_dagster_home
from s3zip_dagster.local_s3 import LocalS3

from .. import httpcount
from ..memory import TreeSampler

ROOT = Path(__file__).resolve().parents[2]  # the project folder, for `-m benchmarks...`
TIMEOUT_SECONDS = 3600


def _run_config(job) -> str:
    return (
        "resources:\n"
        "  archive_request:\n"
        "    config:\n"
        f"      source_bucket: {job.source_bucket}\n"
        f"      source_prefix: {job.prefix}\n"
        f"      destination_bucket: {job.destination_bucket}\n"
        f"      destination_key: {job.destination_key}\n"
        f"      threads: {job.threads}\n"
        f"      strategy: {ZERO_STREAM}\n"
    )


def run(client, job) -> dict:
    home = prepare_dagster_home(Path(job.workdir) / "dagster_home")
    counts = Path(job.workdir) / "http"
    counts.mkdir(parents=True, exist_ok=True)
    config = Path(job.workdir) / "run.yaml"
    config.write_text(_run_config(job))
    server = LocalS3(job.s3_root, job.ports)
    env = {**os.environ, **server.environment(), **dagster_environment(home),
           httpcount.COUNT_DIR_ENV: str(counts),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    command = [str(Path(sys.executable).parent / "dagster"), "job", "execute",
               "-m", "benchmarks.dagster_defs", "-j", "zip_archive_job", "-c", str(config)]
    with open(Path(job.workdir) / "dagster.log", "wb") as log:
        # In the worker's process group: the harness ends the group if the run hangs.
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log,
                                   stderr=subprocess.STDOUT)
        sampler = TreeSampler(process.pid)
        sampler.start()
        try:
            code = process.wait(timeout=TIMEOUT_SECONDS)
        finally:
            sampler.stop()
    if code:
        raise RuntimeError(f"dagster job execute exited with {code}; see "
                           f"{Path(job.workdir) / 'dagster.log'}")
    return {"peak_memory": sampler.largest_process,
            "peak_memory_all_processes": sampler.largest_total,
            "processes": len(sampler.processes)}


def after(job) -> dict:
    """Figures read once the timed run is over: the counted requests of every process the
    run started, and what the Dagster instance recorded."""
    from dagster import AssetKey, DagsterInstance

    from s3zip_dagster.demo import run_figures

    figures = run_figures(Path(job.workdir) / "dagster_home")  # sets DAGSTER_HOME
    with DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(AssetKey("zip_plan"))
        plan = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    return {
        "http": httpcount.read_count_dir(Path(job.workdir) / "http"),
        "dagster_steps": figures["steps"],
        "run_status": figures["status"],
        "peak_step_memory": figures["peak_batch_memory"],
        "job_bytes_through_workers": figures["bytes_through_workers"],
        "entries": figures["entries"],
        "parts": figures["parts"],
        "batches": plan["batches"],
        "temporary_objects": plan["temporary_objects"],
        "copied_bytes": plan["bytes_copied_by_s3"],
        "extra_copied_bytes": plan["extra_bytes_copied_by_s3"],
    }
