"""`make bench`: every contender on every data set, on one local S3 server, side by side.

    python -m benchmarks.run                        # everything required (not --huge)
    python -m benchmarks.run --sets seed,big --contenders a,d --repeat 1   # a quick subset

Each run of a contender is a process of its own (benchmarks.worker); its archive is
downloaded and checked (benchmarks.verify) before its figures count, and a run that fails
either is reported as failed. Results: a table on stdout, benchmarks/results/latest.json
and benchmarks/results/latest.png. Everything else lives under .local/bench/, and the
server is stopped at the end, whatever happens.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from s3zip_dagster.local_s3 import LocalS3, free_ports

from . import calibrate, report
from .contenders import NAMES
from .datasets import SETS, DataSet, seed_shape, upload
from .verify import VerificationError, verify

log = logging.getLogger("benchmarks")

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local" / "bench"
RESULTS = ROOT / "benchmarks" / "results"
DESTINATION_BUCKET = "bench-archives"
SCRATCH_PREFIX = ".s3zip-scratch/"  # the core's default scratch folder
REPEAT_UNDER_BYTES = 10**9  # sets under 1 GB are run `--repeat` times, the median counts
RUN_TIMEOUT_SECONDS = 3600
STOP_GRACE_SECONDS = 20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", default="seed,big,small",
                        help="comma-separated, from: seed, big, small, huge")
    parser.add_argument("--huge", action="store_true", help="add the set with a 5 GiB object")
    parser.add_argument("--contenders", default="a,b,c,d,e",
                        help="comma-separated, from: " + ", ".join(NAMES))
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per contender on sets under 1 GB (the median counts)")
    parser.add_argument("--seed-count", type=int, default=600,
                        help="objects in the seed shape set (the seed design used 3000)")
    parser.add_argument("--threads", type=int, default=10)
    parser.add_argument("--planner-entries", type=int, default=1_000_000,
                        help="entries of the planner scale run; 0 skips it")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest",
                        help="writes OUTPUT.json and OUTPUT.png")
    args = parser.parse_args(argv)
    args.sets = [s for s in args.sets.split(",") if s] + (["huge"] if args.huge else [])
    args.contenders = [c for c in args.contenders.split(",") if c]
    unknown = [s for s in args.sets if s not in SETS] + [c for c in args.contenders
                                                        if c not in NAMES]
    if unknown:
        parser.error(f"unknown sets or contenders: {', '.join(unknown)}")
    return args


def _stop(process: subprocess.Popen) -> None:
    """End a worker this harness started, if it still runs, and whatever it left running
    in its process group (it has a session of its own, so the group id is its pid)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return  # the group is empty
        try:
            process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5)  # members told to end get a moment to do so


def run_worker(job: dict, workdir: Path) -> dict:
    """Run one contender in a process of its own; return what it measured."""
    (workdir / "job.json").write_text(json.dumps(job, default=str))
    result_path = workdir / "result.json"
    command = [sys.executable, "-m", "benchmarks.worker", str(workdir / "job.json"),
               str(result_path)]
    with open(workdir / "worker.out", "wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            process.wait(timeout=RUN_TIMEOUT_SECONDS)
        finally:
            _stop(process)
    if not result_path.exists():
        tail = (workdir / "worker.out").read_text(errors="replace")[-400:]
        return {"error": f"worker exited with {process.returncode}: {tail}"}
    return json.loads(result_path.read_text())


def leftovers(client, bucket: str) -> dict:
    """Incomplete uploads and scratch objects in the destination bucket, then removed."""
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    for pending in uploads:
        client.abort_multipart_upload(Bucket=bucket, Key=pending["Key"],
                                      UploadId=pending["UploadId"])
    scratch = client.list_objects_v2(Bucket=bucket, Prefix=SCRATCH_PREFIX).get("Contents", [])
    for item in scratch:
        client.delete_object(Bucket=bucket, Key=item["Key"])
    return {"incomplete_uploads": len(uploads), "scratch_objects": len(scratch)}


def vacuum(server: LocalS3) -> None:
    """Ask SeaweedFS to reclaim the space of deleted objects (the runs write many GB)."""
    url = f"http://127.0.0.1:{server.ports['master']}/vol/vacuum?garbageThreshold=0.01"
    try:
        urllib.request.urlopen(url, timeout=600).read()
    except OSError as error:
        log.warning("vacuum failed (%s); deleted objects keep their disk space", error)


def run_once(server: LocalS3, client, data: DataSet, letter: str, attempt: int,
             threads: int, expected: dict) -> dict:
    key = f"{data.name}-{letter}-{attempt}.zip"
    workdir = LOCAL / "runs" / f"{data.name}-{letter}-{attempt}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    job = {"contender": letter, "source_bucket": data.bucket, "prefix": data.prefix,
           "destination_bucket": DESTINATION_BUCKET, "destination_key": key,
           "threads": threads, "workdir": str(workdir), "s3_root": str(server.root),
           "ports": server.ports}
    run = run_worker(job, workdir)
    run["ok"] = run.get("error") is None
    if run["ok"]:
        try:
            run["archive_bytes"], run["entries_checked"] = verify(
                client, DESTINATION_BUCKET, key, expected, workdir)
        except (VerificationError, OSError) as error:
            run["ok"], run["error"] = False, f"verification: {error}"
    run["left_behind"] = leftovers(client, DESTINATION_BUCKET)
    client.delete_object(Bucket=DESTINATION_BUCKET, Key=key)
    vacuum(server)
    state = "ok" if run["ok"] else f"FAILED: {run['error'][:300]}"
    log.info("%s (%s) run %d: %.1f s, %s", data.name, letter, attempt,
             run.get("seconds", 0), state)
    return run


def run_contender(server, client, data: DataSet, letter: str, repeats: int, threads: int,
                  expected: dict) -> dict:
    runs = [run_once(server, client, data, letter, i + 1, threads, expected)
            for i in range(repeats)]
    failed = [r for r in runs if not r["ok"]]
    if failed:
        return {**failed[0], "runs": len(runs), "failed_runs": len(failed)}
    median = statistics.median_low(r["seconds"] for r in runs)
    chosen = next(r for r in runs if r["seconds"] == median)
    return {**chosen, "runs": len(runs), "all_seconds": [r["seconds"] for r in runs]}


def remove_set(client, data: DataSet) -> None:
    keys = [o.key for o in data.objects]
    for start in range(0, len(keys), 1000):
        client.delete_objects(Bucket=data.bucket, Delete={
            "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})


def planner_scale(entries: int) -> dict:
    log.info("planner scale: %d entries", entries)
    done = subprocess.run([sys.executable, "-m", "benchmarks.planner_scale", str(entries)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        return {"entries": entries, "error": done.stderr[-400:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(args: argparse.Namespace, server: LocalS3) -> dict:
    client = server.client()
    client.create_bucket(Bucket=DESTINATION_BUCKET)
    results: dict = {"threads": args.threads, "sets": {}, "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "system": platform.platform()}, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for name in args.sets:
        data = seed_shape(args.seed_count) if name == "seed" else SETS[name]()
        started = time.monotonic()
        expected = upload(client, data, args.threads)
        log.info("%s: %d objects, %d B uploaded in %.1f s", data.title, len(data.objects),
                 data.total_bytes, time.monotonic() - started)
        if name == "big":
            results["calibration"] = calibrate.measure(client, data, DESTINATION_BUCKET,
                                                       args.threads)
            log.info("S3 server throughput: %s", results["calibration"])
        repeats = args.repeat if data.total_bytes < REPEAT_UNDER_BYTES else 1
        entry = {"title": data.title, "objects": len(data.objects),
                 "total_bytes": data.total_bytes, "small_bytes": data.small_bytes,
                 "repeats": repeats, "contenders": {}}
        results["sets"][name] = entry
        for letter in args.contenders:
            entry["contenders"][letter] = run_contender(server, client, data, letter, repeats,
                                                        args.threads, expected)
        sizes = [r["archive_bytes"] for r in entry["contenders"].values() if r["ok"]]
        entry["archive_bytes"] = max(sizes) if sizes else 0
        remove_set(client, data)
        vacuum(server)
    if args.planner_entries:
        results["planner"] = planner_scale(args.planner_entries)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    shutil.rmtree(LOCAL, ignore_errors=True)
    LOCAL.mkdir(parents=True)
    server = LocalS3(LOCAL / "s3", free_ports()).start()
    try:
        results = bench(args, server)
    finally:
        server.stop()
    shutil.rmtree(LOCAL / "s3", ignore_errors=True)

    found = report.targets(results)
    results["targets"] = found
    report.save_json(results, args.output.with_suffix(".json"))
    report.save_chart(results, args.output.with_suffix(".png"))
    print()
    print(report.table(results))
    print()
    print("S3 requests by operation:")
    print(report.requests_by_operation(results))
    for name in ("calibration", "planner"):
        if results.get(name):
            print()
            print(f"{name}: {json.dumps(results[name])}")
    print()
    print("targets:")
    print(report.targets_text(found))
    print()
    print(f"written: {args.output.with_suffix('.json')}, {args.output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
