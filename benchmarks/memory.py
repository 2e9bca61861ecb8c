"""Peak memory of a process, or of the processes of a run, from /proc.

ru_maxrss is not used: Linux carries a process's peak across fork and exec, so a worker
started by the harness would report the harness's peak. VmHWM in /proc/PID/status is the
high-water mark of the process's own memory, which exec starts afresh.
"""

import os
import threading
from pathlib import Path

SAMPLE_SECONDS = 0.2


def _status(pid: int | str, field: str) -> int:
    """A kB field of /proc/PID/status, in bytes; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def peak_of_self() -> int:
    return _status("self", "VmHWM")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces
        children.setdefault(parent, []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    children = _children_map()
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        queue += children.get(current, [])
    return found


class TreeSampler(threading.Thread):
    """Samples a process and its descendants until stopped: the largest peak of one
    process (VmHWM), and the largest sum of their resident memory at one sample."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.largest_process = 0
        self.largest_total = 0
        self.processes: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            pids = descendants(self.pid)
            self.processes.update(pids)
            self.largest_process = max([self.largest_process]
                                       + [_status(p, "VmHWM") for p in pids])
            self.largest_total = max(self.largest_total,
                                     sum(_status(p, "VmRSS") for p in pids))

    def stop(self) -> None:
        self._done.set()
        self.join()
