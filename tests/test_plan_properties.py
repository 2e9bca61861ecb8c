"""Properties of build_plan over random source listings: S3's part rules, the ZIP layout
computed independently from the ZIP records, and batches that are self-contained."""

import random
from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from s3zip_dagster.core import zipformat
from s3zip_dagster.core.errors import PlanError, SourceError
from s3zip_dagster.core.limits import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    ZIP32_MAX_SIZE,
    GiB,
    KiB,
    MiB,
)
from s3zip_dagster.core.plan import (
    HEAD_STREAM,
    STRATEGIES,
    ZERO_STREAM,
    Composed,
    DataPiece,
    HeaderPiece,
    Part,
    Plan,
    PlanSettings,
    SourceObject,
    SourceRange,
    Temp,
    TempRange,
    build_plan,
)

BUCKET = "src-bucket"
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FEWER_EXAMPLES = settings(PROPERTY_SETTINGS, max_examples=60)

# Sizes near every threshold the planner cares about, and far from them.
_SIZE_RANGES = {
    "zero": (0, 0),
    "tiny": (1, 4 * KiB),
    "small": (4 * KiB, 4 * MiB),
    "near_min_part": (MIN_PART_SIZE - 64, MIN_PART_SIZE + 64),
    "near_two_min_parts": (2 * MIN_PART_SIZE - 4 * KiB, 2 * MIN_PART_SIZE + 64),
    "medium": (5 * MiB, 20 * MiB),
    "large": (20 * MiB, 2 * GiB),
    "near_zip32": (ZIP32_MAX_SIZE - 2, ZIP32_MAX_SIZE + 2),
    "near_max_part": (MAX_PART_SIZE - 64, MAX_PART_SIZE + 64),
    "huge": (2 * GiB, 12 * GiB),
}

# Weights of each size range, per kind of listing. Huge sizes stay rare so that 5,000
# entries fit in S3's 5 TiB object limit.
_PROFILES = {
    "mixed": {"zero": 8, "tiny": 30, "small": 25, "near_min_part": 10,
              "near_two_min_parts": 5, "medium": 15, "large": 4, "near_zip32": 0.3,
              "near_max_part": 0.3, "huge": 0.5},
    "many_small": {"zero": 10, "tiny": 60, "small": 30},
    "around_min_part": {"near_min_part": 60, "near_two_min_parts": 20, "tiny": 20},
    "medium": {"medium": 90, "near_min_part": 10},
    "big": {"large": 60, "near_zip32": 5, "near_max_part": 5, "huge": 5, "tiny": 25},
    "gibibytes": {"huge": 40, "near_zip32": 10, "near_max_part": 10, "tiny": 40},
}

_SUFFIXES = (".txt", "-ü.bin", "/日本語.dat", " 🎉", "+%?# name", "/Ωmega", ".csv")
_FOLDERS = ("", "d/", "ü/", "d/e/", "Ünïcode folder/")
_MTIMES = (0, 1_700_000_000, 2**31 + 5, 315_532_800)


def _size_strategy() -> st.SearchStrategy[int]:
    return st.one_of([st.integers(low, high) for low, high in _SIZE_RANGES.values()])


def _random_sizes(rng: random.Random, profile: str, count: int) -> list[int]:
    weights = _PROFILES[profile]
    kinds = rng.choices(list(weights), list(weights.values()), k=count)
    return [rng.randint(*_SIZE_RANGES[kind]) for kind in kinds]


def _objects(prefix: str, sizes: list[int], marker_share: int) -> list[SourceObject]:
    """Unique keys, some non-ASCII; every `marker_share`-th empty object is a folder
    marker (a key ending in '/')."""
    objects = []
    for i, size in enumerate(sizes):
        folder = _FOLDERS[i % len(_FOLDERS)]
        if size == 0 and i % marker_share == 0:
            key = f"{prefix}{folder}m{i:05d}/"
        else:
            key = f"{prefix}{folder}{i:05d}{_SUFFIXES[i % len(_SUFFIXES)]}"
        objects.append(SourceObject(key, size, f'"etag{i}"', _MTIMES[i % len(_MTIMES)]))
    return objects


@st.composite
def listings(draw, max_count: int = 5000, min_count: int = 1) -> tuple[str, list]:
    """A source prefix and its listing: a short list drawn size by size (shrinks well), or
    up to `max_count` entries drawn from a seed (fast). Empty only when `min_count` is 0."""
    prefix = draw(st.sampled_from(["", "src/", "ü prefix/"]))
    if draw(st.booleans()):
        sizes = draw(st.lists(_size_strategy(), min_size=min_count, max_size=40))
    else:
        count = draw(st.one_of(st.integers(1, max_count),
                               st.integers(max_count * 4 // 5, max_count)))
        profile = draw(st.sampled_from(sorted(_PROFILES)))
        rng = random.Random(draw(st.integers(0, 2**32 - 1)))
        sizes = _random_sizes(rng, profile, count)
    marker_share = draw(st.integers(1, 4))
    return prefix, _objects(prefix, sizes, marker_share)


# --- The independent layout ----------------------------------------------------------------

def _expected_layout(prefix: str, objects: list[SourceObject]) -> dict:
    """Entry offsets and the archive size from the ZIP records alone: each local header's
    real length, the data, each central header's real length, the end records."""
    offsets, header_sizes, names = [], [], []
    offset = 0
    for obj in sorted(objects, key=lambda o: o.key):
        name = obj.key[len(prefix):]
        header = zipformat.local_header(name.encode(), obj.size, 0, obj.mtime)
        offsets.append(offset)
        header_sizes.append(len(header))
        names.append(name)
        offset += len(header) + obj.size

    directory_offset = offset
    directory_size = 0
    for obj, name, entry_offset in zip(sorted(objects, key=lambda o: o.key), names, offsets,
                                       strict=True):
        directory_size += len(zipformat.central_header(
            name.encode(), obj.size, 0, obj.mtime, entry_offset, name.endswith("/")))
    end_size = len(zipformat.end_records(len(objects), directory_offset, directory_size))
    return {
        "names": names, "offsets": offsets, "header_sizes": header_sizes,
        "directory_offset": directory_offset, "directory_size": directory_size,
        "end_size": end_size, "archive_size": directory_offset + directory_size + end_size,
    }


def check_layout_matches_the_zip_records(plan: Plan, expected: dict) -> None:
    assert [e.name for e in plan.entries] == expected["names"]
    assert [e.index for e in plan.entries] == list(range(len(plan.entries)))
    assert [e.offset for e in plan.entries] == expected["offsets"]
    assert [e.header_size for e in plan.entries] == expected["header_sizes"]
    assert plan.final.directory_offset == expected["directory_offset"]
    assert plan.final.directory_size == expected["directory_size"]
    assert plan.final.end_size == expected["end_size"]
    assert plan.archive_size == expected["archive_size"]


# --- The properties -------------------------------------------------------------------------

def _check_object_parts(parts: list[Part], max_count: int, s: PlanSettings, what: str,
                        last_may_be_small: bool) -> None:
    """S3's rules for the parts of one multipart upload."""
    assert [p.number for p in parts] == list(range(1, len(parts) + 1)), f"{what}: numbers"
    assert len(parts) <= min(max_count, MAX_PARTS), f"{what}: {len(parts)} parts"
    position = 0
    for part in parts:
        assert part.offset == position, f"{what}: part {part.number} at {part.offset}"
        assert 0 < part.size <= s.max_part_size, f"{what}: part {part.number}: {part.size} B"
        if part is not parts[-1] or not last_may_be_small:
            assert part.size >= s.min_part_size, f"{what}: part {part.number} under 5 MiB"
        position += part.size


def check_parts_obey_s3_rules(plan: Plan) -> None:
    s = plan.settings
    parts = plan.archive_parts()
    assert plan.part_count == len(parts) + 1 <= s.max_parts
    assert plan.final.number == len(parts) + 1, "the final part is not the last"
    _check_object_parts(parts, s.max_parts, s, "archive", last_may_be_small=False)
    end = parts[-1].offset + parts[-1].size if parts else 0
    assert plan.final.offset == end, "the final part does not follow the others"
    assert plan.final.size <= s.max_part_size
    assert plan.archive_size == plan.final.offset + plan.final.size

    for temp in plan.temps():
        assert temp.kind in ("tail", "lead-base", "lead", "group"), temp.kind
        _check_object_parts(temp.parts, s.max_parts, s, f"temporary object {temp.index}",
                            last_may_be_small=True)


def _source_leaves(plan: Plan, source, temps: dict[int, Temp]) -> list[tuple]:
    """What bytes a part holds, as (tag, entry, start, end) runs: H a local header, D an
    entry's data, F filler. Ranges of temporary objects are followed down."""
    if isinstance(source, SourceRange):
        tag = "F" if source.filler else "D"
        return [(tag, source.entry, source.start, source.end)]
    if isinstance(source, Composed):
        leaves = []
        for piece in source.pieces:
            if isinstance(piece, HeaderPiece):
                leaves.append(("H", piece.entry, 0, plan.entries[piece.entry].header_size))
            else:
                leaves.append(("D", piece.entry, piece.start, piece.end))
        assert sum(end - start for _, _, start, end in leaves) == source.size
        return leaves
    assert isinstance(source, TempRange)
    inner = [leaf for part in temps[source.temp].parts
             for leaf in _source_leaves(plan, part.source, temps)]
    sliced, position = [], 0
    for tag, entry, start, end in inner:
        lo, hi = max(position, source.start), min(position + end - start, source.end)
        if lo < hi:
            sliced.append((tag, entry, start + lo - position, start + hi - position))
        position += end - start
    assert position == temps[source.temp].size
    return sliced


def _merge(leaves: list[tuple]) -> list[tuple]:
    merged: list[tuple] = []
    for leaf in leaves:
        if merged and merged[-1][:2] == leaf[:2] and merged[-1][3] == leaf[2]:
            merged[-1] = (*leaf[:2], merged[-1][2], leaf[3])
        else:
            merged.append(leaf)
    return merged


def check_archive_bytes_follow_the_layout(plan: Plan) -> None:
    """Following every part down to source ranges and composed pieces gives exactly the
    ZIP layout: each local header, then the whole data, entry after entry; no filler."""
    temps = {t.index: t for t in plan.temps()}
    leaves = [leaf for part in plan.archive_parts()
              for leaf in _source_leaves(plan, part.source, temps)]
    leaves += _source_leaves(plan, Composed(plan.final.pieces, plan.final.directory_offset
                                            - plan.final.offset), temps)
    expected = []
    for entry in plan.entries:
        expected.append(("H", entry.index, 0, entry.header_size))
        if entry.size:
            expected.append(("D", entry.index, 0, entry.size))
    assert _merge(leaves) == expected


def check_no_big_object_byte_is_composed(plan: Plan) -> None:
    """zero-stream: data of an object of copy_threshold or more is only ever copied."""
    composed = [p.source for p in plan.all_parts() if isinstance(p.source, Composed)]
    composed.append(Composed(plan.final.pieces, 0))
    for source in composed:
        for piece in source.pieces:
            if isinstance(piece, DataPiece):
                size = plan.entries[piece.entry].size
                assert size < plan.settings.copy_threshold, f"entry {piece.entry} is streamed"
    assert plan.read_bytes == sum(e.size for e in plan.entries
                                  if e.size < plan.settings.copy_threshold)


def check_batches_are_self_contained(plan: Plan) -> None:
    """A batch holds every temporary object its parts copy, and for every local header it
    composes, the whole data of that entry: pieces in the same part, or copied ranges of the
    batch, or probes. Nothing is in two batches."""
    assert 1 <= len(plan.batches) <= plan.settings.batch_count
    assert [b.index for b in plan.batches] == list(range(len(plan.batches)))
    numbers = [p.number for p in plan.archive_parts()]
    assert numbers == sorted(numbers), "batches do not take the parts in order"
    owners = Counter(t.index for t in plan.temps())
    assert all(count == 1 for count in owners.values()), "a temporary object in two batches"

    for batch in plan.batches:
        own = {t.index for t in batch.temps}
        sources = [p.source for p in batch.parts] + [p.source for t in batch.temps
                                                     for p in t.parts]
        assert {s.temp for s in sources if isinstance(s, TempRange)} <= own
        copied: dict[int, list[tuple[int, int]]] = {}
        for source in sources + list(batch.probes):
            if isinstance(source, SourceRange) and not source.filler:
                copied.setdefault(source.entry, []).append((source.start, source.end))
        for source in sources:
            if not isinstance(source, Composed):
                continue
            here: dict[int, list[tuple[int, int]]] = {}
            for piece in source.pieces:
                if isinstance(piece, DataPiece):
                    here.setdefault(piece.entry, []).append((piece.start, piece.end))
            for piece in source.pieces:
                if isinstance(piece, HeaderPiece):
                    spans = sorted(set(here.get(piece.entry, []) + copied.get(piece.entry, [])))
                    position = 0
                    for start, end in spans:
                        assert start == position, f"entry {piece.entry}: gap or overlap"
                        position = end
                    assert position == plan.entries[piece.entry].size, (
                        f"batch {batch.index} cannot learn the CRC-32 of entry {piece.entry}")
        touched = {s.entry for s in sources + list(batch.probes)
                   if isinstance(s, SourceRange)}
        touched |= {p.entry for s in sources if isinstance(s, Composed) for p in s.pieces}
        assert touched <= set(batch.entries), f"batch {batch.index} lacks entries it touches"
        for index, entry in batch.entries.items():
            assert entry == plan.entries[index]

    for piece in plan.final.pieces:  # the final part holds whole small entries only
        if isinstance(piece, DataPiece):
            assert (piece.start, piece.end) == (0, plan.entries[piece.entry].size)


def check_plan(plan: Plan, expected: dict) -> None:
    check_layout_matches_the_zip_records(plan, expected)
    check_parts_obey_s3_rules(plan)
    check_archive_bytes_follow_the_layout(plan)
    check_batches_are_self_contained(plan)
    if plan.settings.strategy == ZERO_STREAM:
        check_no_big_object_byte_is_composed(plan)
    assert plan.copy_parts + plan.upload_parts == plan.part_count


# --- Tests ----------------------------------------------------------------------------------

def _count_event(count: int) -> str:
    for bound in (0, 40, 1000, 4000):
        if count <= bound:
            return f"entries <= {bound}"
    return "entries > 4000"


@PROPERTY_SETTINGS
@given(listings(min_count=0), st.integers(1, 8), st.sampled_from([5 * MiB, 8 * MiB, 32 * MiB]),
       st.sampled_from(STRATEGIES))
def test_plan_obeys_s3_part_rules_and_matches_the_zip_layout(listing, batch_count,
                                                             upload_part_size, strategy):
    prefix, objects = listing
    plan_settings = PlanSettings(batch_count=batch_count, upload_part_size=upload_part_size,
                                 strategy=strategy)
    event(_count_event(len(objects)))
    if not objects:
        with pytest.raises(SourceError, match="no objects to archive"):
            build_plan(objects, BUCKET, prefix, plan_settings)
        return

    expected = _expected_layout(prefix, objects)
    if expected["archive_size"] > plan_settings.max_archive_size:
        event("archive over the object limit")
        with pytest.raises(PlanError, match="per object"):
            build_plan(objects, BUCKET, prefix, plan_settings)
        return

    plan = build_plan(objects, BUCKET, prefix, plan_settings)
    event(f"zip64 {plan.zip64}")
    event(f"{strategy}, temporary objects: {bool(plan.temps())}")
    check_plan(plan, expected)


def test_listings_reach_five_thousand_entries():
    seen = []

    @settings(max_examples=30, deadline=None, database=None)
    @given(listings())
    def record(listing):
        seen.append(len(listing[1]))

    record()
    assert max(seen) >= 4000, seen


def test_an_empty_listing_raises_source_error():
    with pytest.raises(SourceError, match="no objects to archive"):
        build_plan([], BUCKET, "p/")


def test_a_listing_of_only_the_prefix_folder_marker_raises_source_error():
    with pytest.raises(SourceError, match="no objects to archive"):
        build_plan([SourceObject("p/", 0, '"e"', 0)], BUCKET, "p/")


def test_prefix_folder_marker_and_excluded_keys_are_skipped():
    objects = _objects("p/", [0, 10, 20], marker_share=5)
    objects.append(SourceObject("p/", 0, '"e"', 0))
    plan = build_plan(objects, BUCKET, "p/", exclude_keys=frozenset({objects[2].key}))
    assert plan.skipped_keys == sorted(["p/", objects[2].key])
    assert len(plan.entries) == 2
    check_plan(plan, _expected_layout("p/", objects[:2]))


def _part_sizes(plan: Plan) -> list[int]:
    return [p.size for p in plan.archive_parts() if isinstance(p.source, Composed)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_lower_max_parts_grows_upload_parts_until_the_plan_fits(strategy):
    objects = _objects("", [MiB + i for i in range(2000)], marker_share=1)
    expected = _expected_layout("", objects)

    default = build_plan(objects, BUCKET, "", PlanSettings(strategy=strategy))
    check_plan(default, expected)
    assert default.part_count > 200

    small = build_plan(objects, BUCKET, "", PlanSettings(max_parts=20, strategy=strategy))
    check_plan(small, expected)
    assert small.part_count <= 20
    assert max(_part_sizes(small)) > 8 * max(_part_sizes(default))


def test_head_stream_copies_fewer_objects_until_the_plan_fits():
    # 300 objects of 11 MiB: each is copied (two parts each) unless the copy threshold grows.
    objects = _objects("", [11 * MiB + i for i in range(300)], marker_share=1)
    expected = _expected_layout("", objects)

    default = build_plan(objects, BUCKET, "", PlanSettings(strategy=HEAD_STREAM))
    check_plan(default, expected)
    assert default.copy_parts == 300

    small = build_plan(objects, BUCKET, "", PlanSettings(max_parts=50, strategy=HEAD_STREAM))
    check_plan(small, expected)
    assert small.part_count <= 50
    assert small.copy_parts < default.copy_parts


@pytest.mark.parametrize("batch_count", [1, 3])
def test_zero_stream_assembles_group_objects_when_parts_exceed_max_parts(batch_count):
    # 300 objects, a third of them big: far more than 50 parts, yet no byte is streamed.
    sizes = [(5 * MiB + i * 4099) if i % 3 == 0 else 40_000 + i for i in range(300)]
    objects = _objects("", sizes, marker_share=1)
    settings_ = PlanSettings(max_parts=50, batch_count=batch_count, strategy=ZERO_STREAM)
    plan = build_plan(objects, BUCKET, "", settings_)
    check_plan(plan, _expected_layout("", objects))
    assert plan.part_count <= 50
    assert any(t.kind == "group" for t in plan.temps())
    assert build_plan(objects, BUCKET, "", replace(settings_, max_parts=MAX_PARTS)
                      ).part_count > 50


@FEWER_EXAMPLES
@given(listings(max_count=3000), st.integers(3, 400), st.integers(1, 4))
def test_zero_stream_fits_any_max_parts_or_says_why(listing, max_parts, batch_count):
    prefix, objects = listing
    plan_settings = PlanSettings(max_parts=max_parts, batch_count=batch_count,
                                 strategy=ZERO_STREAM)
    expected = _expected_layout(prefix, objects)
    assume(expected["archive_size"] <= plan_settings.max_archive_size)
    try:
        plan = build_plan(objects, BUCKET, prefix, plan_settings)
    except PlanError as error:
        assert "group objects" in str(error) or "central directory" in str(error), error
        # Grouping gives each batch groups of at most max_parts parts, copied in ranges of at
        # most 5 GiB: failing is right only when those alone are too many.
        ungrouped = build_plan(objects, BUCKET, prefix, PlanSettings(
            upload_part_size=plan_settings.max_upload_part_size, batch_count=batch_count,
            strategy=ZERO_STREAM))
        groups_at_least = -(-(ungrouped.part_count - 1) // max_parts)
        ranges_at_least = expected["archive_size"] // MAX_PART_SIZE
        assert max(groups_at_least, ranges_at_least) + batch_count + 1 > max_parts, error
        event("plan error")
        return
    event("fits")
    check_plan(plan, expected)


def _parts_at_full_growth(objects: list[SourceObject], plan_settings: PlanSettings) -> int:
    """An upper bound of the parts a plan needs once upload parts and the copy threshold
    have grown to max_upload_part_size: every upload part but those cut before a copied
    object holds at least that many bytes, and a copied object needs an upload part and
    its copy parts of at most max_part_size."""
    grown = plan_settings.max_upload_part_size
    total = sum(o.size + 200 for o in objects)  # data and a generous local header
    copied = [o.size for o in objects if o.size >= grown]
    return (total // grown + sum(1 + -(-size // plan_settings.max_part_size) for size in copied)
            + 1)


@FEWER_EXAMPLES
@given(listings(max_count=3000), st.integers(3, 400))
def test_head_stream_fits_any_max_parts_or_plan_error_only_when_none_is_easy(
    listing, max_parts
):
    prefix, objects = listing
    plan_settings = PlanSettings(max_parts=max_parts, strategy=HEAD_STREAM)
    expected = _expected_layout(prefix, objects)
    try:
        plan = build_plan(objects, BUCKET, prefix, plan_settings)
    except PlanError as error:
        assert f"S3 allows {max_parts}" in str(error), error
        assert _parts_at_full_growth(objects, plan_settings) > max_parts, (
            "the planner gave up although grown parts fit")
        event("plan error")
        return
    event("fits")
    check_plan(plan, expected)


@pytest.mark.parametrize(
    ("sizes", "max_parts"),
    [
        ([GiB] * 6, 10),  # each object of 1 GiB is an upload part and a copy part
        ([12 * GiB] * 3, 8),  # each needs three copy parts of at most 5 GiB
        ([MiB] * 4000, 3),  # 4 GiB in upload parts of at most 256 MiB
    ],
)
def test_a_listing_that_cannot_fit_max_parts_raises_plan_error(sizes, max_parts):
    objects = _objects("", sizes, marker_share=1)
    with pytest.raises(PlanError, match=f"S3 allows {max_parts}"):
        build_plan(objects, BUCKET, "", PlanSettings(max_parts=max_parts,
                                                     strategy=HEAD_STREAM))


def test_zero_stream_raises_plan_error_when_even_group_objects_need_too_many_parts():
    objects = _objects("", [12 * GiB] * 3, marker_share=1)  # 36 GiB: over 7 ranges of 5 GiB
    with pytest.raises(PlanError, match="group objects; S3 allows 4"):
        build_plan(objects, BUCKET, "", PlanSettings(max_parts=4, strategy=ZERO_STREAM))


def test_default_max_parts_is_s3s_ten_thousand():
    assert PlanSettings().max_parts == MAX_PARTS == 10_000


def test_an_archive_over_the_object_limit_raises_plan_error():
    objects = _objects("", [3 * GiB, 3 * GiB], marker_share=1)
    with pytest.raises(PlanError, match="per object"):
        build_plan(objects, BUCKET, "", PlanSettings(max_archive_size=6 * GiB))


@PROPERTY_SETTINGS
@given(
    listings(max_count=2000),
    st.data(),
    st.sampled_from([8 * MiB, 256 * MiB, GiB, 3 * GiB, 4 * GiB, 4 * GiB + GiB // 2]),
    st.sampled_from([5 * MiB, 16 * MiB, 512 * MiB]),
    st.sampled_from(STRATEGIES),
)
def test_custom_settings_give_a_plan_that_obeys_them_or_plan_error(
    listing, data, max_upload_part_size, copy_threshold, strategy
):
    prefix, objects = listing
    # Few parts for the listing, so that the planner must grow its parts.
    max_parts = data.draw(st.integers(3, max(3, min(MAX_PARTS, 2 * len(objects) + 2))))
    try:
        plan_settings = PlanSettings(
            max_parts=max_parts, upload_part_size=min(8 * MiB, max_upload_part_size),
            max_upload_part_size=max_upload_part_size, copy_threshold=copy_threshold,
            strategy=strategy)
    except PlanError:
        assume(False)
    expected = _expected_layout(prefix, objects)
    try:
        plan = build_plan(objects, BUCKET, prefix, plan_settings)
    except PlanError as error:
        assert f"S3 allows {max_parts}" in str(error) or "per object" in str(error)
        event("plan error")
        return
    event("fits")
    check_plan(plan, expected)


def test_a_grown_copy_threshold_keeps_upload_parts_within_max_part_size():
    # With upload parts of up to 4 GiB, objects under a grown copy threshold join them; the
    # threshold may grow only as far as leaves such a part within S3's 5 GiB.
    plan_settings = PlanSettings(max_parts=13, max_upload_part_size=4 * GiB,
                                 strategy=HEAD_STREAM)
    assert plan_settings.max_copy_threshold <= MAX_PART_SIZE - 4 * GiB
    objects = _objects("", [3 * GiB] * 6, marker_share=1)
    plan = build_plan(objects, BUCKET, "", plan_settings)
    check_plan(plan, _expected_layout("", objects))

    with pytest.raises(PlanError, match="S3 allows 4"):
        build_plan(objects, BUCKET, "", PlanSettings(max_parts=4, max_upload_part_size=4 * GiB,
                                                     strategy=HEAD_STREAM))


def test_default_settings_let_the_copy_threshold_grow_to_max_upload_part_size():
    assert PlanSettings().max_copy_threshold == PlanSettings().max_upload_part_size


def test_settings_leave_room_for_a_local_header_after_a_full_upload_part():
    with pytest.raises(PlanError, match="longest local header"):
        PlanSettings(max_upload_part_size=MAX_PART_SIZE - MIN_PART_SIZE, strategy=HEAD_STREAM)
    PlanSettings(max_upload_part_size=MAX_PART_SIZE - MIN_PART_SIZE - 128 * KiB,
                 strategy=HEAD_STREAM)
