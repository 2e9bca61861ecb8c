"""Failures injected into a part store: an S3PartStore that fails one kind of call after a
number of them succeeded, and records what S3 accepted before."""

import threading

from s3zip_dagster.core.s3 import S3PartStore


class InjectedFailure(Exception):
    """Stands for any failure of a worker: a network error, a crash, a throttled call."""


def failing_store(operation: str, succeed: int, part_number: int | None = None):
    """An S3PartStore whose `operation` fails after `succeed` calls, or on archive part
    `part_number`. It records what S3 accepted before the failure."""

    class FailingStore(S3PartStore):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.done: list[int] = []  # archive part numbers S3 accepted
            self.begun: list[int] = []  # indices of temporary objects begun
            self.completed: list[int] = []  # and of those completed
            self.probes = 0  # CRC-32 probes made
            self._calls = 0
            self._calls_lock = threading.Lock()

        def _maybe_fail(self, name: str, number: int | None = None) -> None:
            if name != operation:
                return
            with self._calls_lock:
                self._calls += 1
                fail = (number == part_number if part_number is not None
                        else self._calls > succeed)
            if fail:
                raise InjectedFailure(f"injected failure in {operation} ({self._calls})")

        def _record(self, target, number: int) -> None:
            if target is None:
                with self._calls_lock:
                    self.done.append(number)

        def upload_part(self, target, number, body, crc):
            self._maybe_fail("upload_part", number if target is None else None)
            etag = super().upload_part(target, number, body, crc)
            self._record(target, number)
            return etag

        def copy_source(self, target, number, entry, start, end):
            self._maybe_fail("copy_source")
            result = super().copy_source(target, number, entry, start, end)
            self._record(target, number)
            return result

        def copy_temp(self, target, number, temp, start, end):
            self._maybe_fail("copy_temp")
            result = super().copy_temp(target, number, temp, start, end)
            self._record(target, number)
            return result

        def probe_crc(self, entry, start, end):
            crc = super().probe_crc(entry, start, end)
            with self._calls_lock:
                self.probes += 1
            return crc

        def begin_temp(self, temp):
            self._maybe_fail("begin_temp")
            super().begin_temp(temp)
            with self._calls_lock:
                self.begun.append(temp.index)

        def complete_temp(self, temp, parts, crc):
            self._maybe_fail("complete_temp")
            super().complete_temp(temp, parts, crc)
            with self._calls_lock:
                self.completed.append(temp.index)

    return FailingStore
