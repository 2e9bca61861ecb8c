"""`make dev`: the Dagster UI on the local S3 server with the demo data set.

Run with `python -m s3zip_dagster.dev`. The S3 server keeps its data under .local/dev/s3
between sessions; the demo set is uploaded only when the source bucket is missing or empty.
The Dagster instance lives in .local/dev/dagster_home, with telemetry off. The UI listens on
http://127.0.0.1:3000, or on the port in S3ZIP_DEV_PORT. Ctrl-C stops the UI, then the
S3 server.
"""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .dagster_home import dagster_environment, prepare_dagster_home
from .demo import demo_objects, ensure_bucket, upload_objects
from .local_s3 import DEFAULT_PORTS, HOST, LocalS3, free_ports
from .resources import DEMO_DESTINATION_BUCKET, DEMO_SOURCE_BUCKET, DEMO_SOURCE_PREFIX

log = logging.getLogger("s3zip_dagster.dev")

ROOT = Path(".local") / "dev"
PORT_ENV = "S3ZIP_DEV_PORT"
DEFAULT_PORT = 3000
# `dagster dev` stops its webserver, daemon and code server on SIGINT; give it that long.
STOP_GRACE_SECONDS = 30


class Interrupted(Exception):
    """Ctrl-C or SIGTERM reached this process."""


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _port_free(port: int) -> bool:
    """True when nothing listens on the port. SO_REUSEADDR, as SeaweedFS and the webserver set
    it, so that connections of the last session in TIME_WAIT do not count as taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def ui_port() -> int:
    value = os.environ.get(PORT_ENV, str(DEFAULT_PORT))
    if not value.isdigit():
        raise SystemExit(f"{PORT_ENV}={value!r} is not a port number")
    port = int(value)
    if not _port_free(port):
        raise SystemExit(f"port {port} on {HOST} is taken; choose another with "
                         f"{PORT_ENV}=<port> make dev")
    return port


def s3_ports() -> dict[str, int]:
    """weed's usual ports when all are free (the endpoint then stays the same between
    sessions), else free ones."""
    wanted = [p for port in DEFAULT_PORTS.values() for p in (port, port + 10_000)]
    if all(_port_free(p) for p in wanted):
        return dict(DEFAULT_PORTS)
    log.info("the usual SeaweedFS ports are taken; using free ones")
    return free_ports()


def seed_demo_set(server: LocalS3) -> None:
    """Upload the demo set unless the source bucket already holds objects; make sure the
    destination bucket exists."""
    client = server.client()
    created = ensure_bucket(client, DEMO_SOURCE_BUCKET)
    if created or not client.list_objects_v2(Bucket=DEMO_SOURCE_BUCKET, MaxKeys=1).get(
            "KeyCount"):
        objects = demo_objects()
        log.info("uploading the demo set to s3://%s/%s: %d objects, %d MB", DEMO_SOURCE_BUCKET,
                 DEMO_SOURCE_PREFIX, len(objects), sum(map(len, objects.values())) // 10**6)
        upload_objects(client, DEMO_SOURCE_BUCKET, objects)
    else:
        log.info("s3://%s already holds objects; keeping them", DEMO_SOURCE_BUCKET)
    ensure_bucket(client, DEMO_DESTINATION_BUCKET)


def dagster_dev_command(port: int) -> list[str]:
    return [str(Path(sys.executable).parent / "dagster"), "dev", "-h", HOST, "-p", str(port),
            "-m", "s3zip_dagster.definitions"]


def stop_dagster_dev(process: subprocess.Popen) -> None:
    """SIGINT (dagster dev then stops its own children), SIGTERM after the grace period,
    and as a last resort SIGKILL to the process group it leads."""
    for signum, wait in ((signal.SIGINT, STOP_GRACE_SECONDS), (signal.SIGTERM, 10)):
        if process.poll() is not None:
            break
        log.info("stopping dagster dev (pid %d) with %s", process.pid, signum.name)
        process.send_signal(signum)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        log.warning("dagster dev (pid %d) did not stop; killing its process group",
                    process.pid)
        os.killpg(process.pid, signal.SIGKILL)  # it leads its own session, see run()
        process.wait()
    log.info("dagster dev (pid %d) ended with %s", process.pid, process.returncode)


def run(port: int) -> int:
    """Start the S3 server and dagster dev; return dagster dev's exit code."""
    home = prepare_dagster_home(ROOT / "dagster_home")
    server = LocalS3(ROOT / "s3", s3_ports())
    dagster: subprocess.Popen | None = None
    try:
        server.start()
        seed_demo_set(server)
        env = {**os.environ, **server.environment(), **dagster_environment(home)}
        command = dagster_dev_command(port)
        log.info("running: %s", " ".join(command))
        # A session of its own: Ctrl-C reaches dagster dev once, from stop_dagster_dev, and
        # never while SeaweedFS is still needed by a run that is being stopped.
        dagster = subprocess.Popen(command, env=env, start_new_session=True)
        log.info("Dagster UI: http://%s:%d (S3 endpoint %s); Ctrl-C stops both", HOST, port,
                 server.endpoint_url)
        return dagster.wait()
    except Interrupted as signal_name:
        log.info("%s received; shutting down", signal_name)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the shutdown finish
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dagster is not None:
            stop_dagster_dev(dagster)
        server.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    port = ui_port()
    signal.signal(signal.SIGINT, _raise_interrupted)
    signal.signal(signal.SIGTERM, _raise_interrupted)
    started = time.monotonic()
    code = run(port)
    log.info("stopped after %.0f s", time.monotonic() - started)
    sys.exit(code)


if __name__ == "__main__":
    main()
