"""Bytes and requests through this process, counted at boto3's HTTP layer.

Every botocore client made after `install()` reports each attempt it sends: the request
body on `before-send`, and the response body on `response-received`. A body in memory
counts by its length; a streamed one (a GetObject answer, a file sent as a request body)
by its Content-Length, which is what crosses the wire: every contender reads what it asks
for. A HeadObject answer counts 0: its Content-Length is the object's, not a body's.

In a process that another one starts (the Dagster steps of `dagster job execute`), set
COUNT_DIR_ENV to a folder: each process then appends one line per request to a file of its
own there, which survives `os._exit` (multiprocessing children end that way), and
`read_count_dir` adds them up.
"""

import os
import threading
from collections import Counter
from pathlib import Path

import botocore.session

COUNT_DIR_ENV = "S3ZIP_BENCH_COUNT_DIR"

_lock = threading.Lock()
requests: Counter[str] = Counter()  # attempts sent, retries included
answers: Counter[str] = Counter()  # attempts answered (a timed-out one is not)
sent_bytes: Counter[str] = Counter()
received_bytes: Counter[str] = Counter()
_log = {"pid": 0, "file": None}
_installed = False


def _operation(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


def _length(headers, body) -> int:
    if isinstance(body, bytes | bytearray):
        return len(body)
    value = headers.get("Content-Length") or headers.get("content-length")
    return int(value) if value is not None else 0


def _write_line(operation: str, sent: int, received: int) -> None:
    folder = os.environ.get(COUNT_DIR_ENV)
    if not folder:
        return
    if _log["pid"] != os.getpid():  # a forked child: a file of its own
        _log["pid"] = os.getpid()
        _log["file"] = open(Path(folder) / f"http-{os.getpid()}.log", "a", buffering=1)
    _log["file"].write(f"{operation} {sent} {received}\n")


def _on_send(request, event_name: str, **_) -> None:
    size = _length(request.headers, request.body)
    operation = _operation(event_name)
    with _lock:
        requests[operation] += 1
        sent_bytes[operation] += size
        _write_line(operation, size, 0)


def _on_response(response_dict, event_name: str, **_) -> None:
    if response_dict is None:
        return
    size = _length(response_dict.get("headers", {}), response_dict.get("body"))
    operation = _operation(event_name)
    with _lock:
        answers[operation] += 1
        received_bytes[operation] += size
        _write_line(operation + "+", 0, size)


def register(client) -> None:
    """Count the requests of one client."""
    client.meta.events.register("before-send.s3", _on_send)
    client.meta.events.register("response-received.s3", _on_response)


def install() -> None:
    """Count every S3 client created from now on in this process."""
    global _installed
    if _installed:
        return
    _installed = True
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        if client.meta.service_model.service_name == "s3":
            register(client)
        return client

    botocore.session.Session.create_client = create_client


def snapshot() -> dict:
    """Requests by operation and the bytes sent and received, counted so far."""
    with _lock:
        return {
            "requests": dict(requests),
            "answers": dict(answers),
            "sent_bytes": sum(sent_bytes.values()),
            "received_bytes": sum(received_bytes.values()),
        }


def read_count_dir(folder: Path) -> dict:
    """Add up the files the processes wrote to `folder` (see the module doc)."""
    counted: Counter[str] = Counter()
    answered: Counter[str] = Counter()
    sent = received = 0
    for path in Path(folder).glob("http-*.log"):
        for line in path.read_text().splitlines():
            operation, out, back = line.split()
            if operation.endswith("+"):
                answered[operation[:-1]] += 1
            else:
                counted[operation] += 1
            sent += int(out)
            received += int(back)
    return {"requests": dict(counted), "answers": dict(answered), "sent_bytes": sent,
            "received_bytes": received,
            "processes": len(list(Path(folder).glob("http-*.log")))}
