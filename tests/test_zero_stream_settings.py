"""Settings the zero-stream plan needs: its parts stay within max_part_size only when that
leaves room for a grown upload part, an object under the copy threshold and composed bytes
under min_part_size; settings that do not are refused up front. No S3 needed."""

import pytest

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.errors import PlanError
from s3zip_dagster.core.limits import MiB
from s3zip_dagster.core.model import MAX_LOCAL_HEADER_SIZE
from s3zip_dagster.core.plan import (
    HEAD_STREAM,
    STRATEGIES,
    ZERO_STREAM,
    PlanSettings,
    SourceObject,
    build_plan,
)

SMALL_PARTS = {"upload_part_size": 5 * MiB, "max_upload_part_size": 5 * MiB}


def _header(name: str) -> int:
    return zipformat.local_header_size(name.encode(), 0)


# The longest parts zero-stream makes. An upload part: composed bytes one byte short of the
# upload part size, then the local header and data of an object one byte under the copy
# threshold, then composed bytes one byte short of a part of their own before a big object.
# A tail object: the last 10 MiB - 1 B of a big object after its lead, then composed bytes
# one byte short of a part of their own.
LONGEST_UPLOAD_PART = {
    "a.bin": 5 * MiB - _header("a.bin") - 1,
    "b.bin": 5 * MiB - 1,
    "c.bin": 5 * MiB - _header("c.bin") - _header("d-big.bin") - 1,
    "d-big.bin": 6 * MiB,
}
LONGEST_TAIL = {
    "a-big.bin": 15 * MiB - _header("a-big.bin") - 1,
    "b.bin": 5 * MiB - _header("b.bin") - _header("c-big.bin") - 1,
    "c-big.bin": 12 * MiB,
}
LONGEST = {"upload": 15 * MiB - 3 + _header("b.bin"), "tail": 15 * MiB - 2}


@pytest.mark.parametrize("max_part_size", [11 * MiB, 15 * MiB])
def test_zero_stream_refuses_a_max_part_size_its_parts_could_exceed(max_part_size):
    with pytest.raises(PlanError, match="zero-stream needs"):
        PlanSettings(max_part_size=max_part_size, strategy=ZERO_STREAM, **SMALL_PARTS)

    PlanSettings(max_part_size=max_part_size, strategy=HEAD_STREAM, **SMALL_PARTS)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("case", ["upload", "tail"])
def test_the_longest_parts_fit_in_the_smallest_max_part_size_allowed(strategy, case):
    limit = 3 * 5 * MiB + MAX_LOCAL_HEADER_SIZE  # the least the settings' rule allows
    settings = PlanSettings(max_part_size=limit, strategy=strategy, **SMALL_PARTS)
    sizes = LONGEST_UPLOAD_PART if case == "upload" else LONGEST_TAIL
    objects = [SourceObject(key, size, "etag", 0) for key, size in sizes.items()]

    plan = build_plan(objects, "src", "", settings, scratch_bucket="dst")

    longest = max(p.size for p in plan.all_parts())
    assert longest <= limit
    if strategy == ZERO_STREAM:  # each case reaches its bound, over 3 * 5 MiB - 3 B
        assert longest == LONGEST[case]
        assert (case == "tail") == ("tail" in [t.kind for t in plan.temps()])
