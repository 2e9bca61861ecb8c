"""One contender's run in a process of its own, so that its peak memory is its own.

`python -m benchmarks.worker JOB.json RESULT.json`: builds the archive the job describes
and writes the figures measured around it. The archive is checked by the harness after.
"""

import json
import logging
import sys
import time
import traceback
from pathlib import Path

from . import httpcount
from .contenders import Job, module_of
from .memory import peak_of_self


def main() -> None:
    job_path, result_path = map(Path, sys.argv[1:3])
    fields = json.loads(job_path.read_text())
    job = Job(**{**fields, "workdir": Path(fields["workdir"]),
                 "s3_root": Path(fields["s3_root"])})
    logging.basicConfig(filename=job.workdir / "worker.log", level=logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")
    httpcount.install()
    from s3zip_dagster.local_s3 import LocalS3

    client = LocalS3(job.s3_root, job.ports).client()
    module = module_of(job.contender)

    error = None
    figures: dict = {}
    started = time.monotonic()
    try:
        figures = module.run(client, job)
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}"
        (job.workdir / "error.txt").write_text(traceback.format_exc())
    seconds = time.monotonic() - started

    http = httpcount.snapshot()
    after = getattr(module, "after", None)
    if after is not None and error is None:
        figures.update(after(job))
        http = figures.pop("http")
    of_run = "peak_memory" in figures  # a contender whose work runs in other processes
    result = {
        "seconds": seconds,
        "error": error,
        "http": http,
        "figures": figures,
        "peak_memory": figures.pop("peak_memory") if of_run else peak_of_self(),
        "peak_memory_of": "largest process of the run" if of_run else "worker process",
    }
    result_path.write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
