"""End to end on SeaweedFS: which keys become which entries. Unusual characters, folders,
thousands of keys, include/exclude patterns, prefix options and the archive's own key."""

import random
import subprocess
import zipfile

from s3zip_dagster.core.limits import KiB, MiB
from s3zip_dagster.core.plan import (
    DEFAULT_SCRATCH_PREFIX,
    ZERO_STREAM,
    NamingOptions,
    PlanSettings,
)
from s3zip_dagster.core.runner import build_archive

from .archive_checks import (
    copied_keys,
    expected_entries,
    fetch_and_check,
    payload,
    put_objects,
    scratch_objects,
)

THREE_BATCHES = PlanSettings(batch_count=3, upload_part_size=5 * MiB, strategy=ZERO_STREAM)

# Characters S3 keeps verbatim that need care: in URLs (`+`, space, `%`, `?`, `#`), in
# UTF-8 (Latin, CJK, Hangul, astral emoji, a decomposed umlaut) and RFC 3986 sub-delimiters.
UNUSUAL_NAMES = [
    "plus+sign.txt", "with space.txt", "percent%20literal.txt", "100%.txt",
    "question?mark.txt", "hash#tag.txt", "ümlaut-ü.txt", "中文/文件.txt",
    "日本語ファイル.txt",
    "한국어.txt", "emoji 😀.txt", "accents éàçñ.txt", "decomposed u\u0308.txt",
    "sub-delims ~!$&'()*,;=@.txt", "brackets [1]{2}^`|.txt",
]


def test_unusual_characters_in_keys_survive_reads_and_server_side_copies(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    objects = {f"p/{name}": f"entry {name}\n".encode() * 50 for name in UNUSUAL_NAMES}
    # Copied by S3: the copy source must be percent-encoded for these to be found.
    objects["p/big +%?#ü中 😀.bin"] = payload(11 * MiB, "big1")
    objects["p/big space/ü/中?#.bin"] = payload(12 * MiB, "big2")
    put_objects(s3_client, source, objects)

    report = build_archive(s3_client, source, "p/", destination, "out.zip", THREE_BATCHES)

    # Copied straight into the archive and into temporary objects (a lead, a tail).
    assert copied_keys(report.plan) == {"p/big +%?#ü中 😀.bin", "p/big space/ü/中?#.bin"}
    assert report.plan.temps()
    path = fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                           expected_entries(objects, "p/"))
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            utf8 = bool(info.flag_bits & 0x800)
            assert utf8 == (not info.filename.isascii()), info.filename


def test_folder_markers_and_nested_folders_extract_to_the_same_tree(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    deep = "p/" + "/".join(f"level{i}" for i in range(12)) + "/leaf.txt"
    objects = {
        "p/a/": b"", "p/a/b/": b"", "p/a/b/c/": b"", "p/a/b/c/leaf.txt": b"leaf\n",
        "p/empty-folder/": b"", "p/x/y/z/no-markers.bin": payload(3000, "nm"),
        deep: b"deep\n", "p/top.txt": b"top\n",
    }
    put_objects(s3_client, source, {"p/": b"", **objects})

    report = build_archive(s3_client, source, "p/", destination, "out.zip")

    assert report.plan.skipped_keys == ["p/"]  # the prefix's own marker is no entry
    path = fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                           expected_entries(objects, "p/"))
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            mode = info.external_attr >> 16
            assert info.is_dir() == info.filename.endswith("/")
            assert mode == (0o40755 if info.is_dir() else 0o100644), info.filename

    out = tmp_path / "extracted"
    subprocess.run(["unzip", "-q", str(path), "-d", str(out)], check=True)
    for key, body in objects.items():
        target = out / key[2:]
        if key.endswith("/"):
            assert target.is_dir(), key
        else:
            assert target.read_bytes() == body, key
    assert not any((out / "empty-folder").iterdir())


def test_two_thousand_small_objects_in_three_batches(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    sizes = random.Random(2000).choices(range(0, 20 * KiB), k=2000)
    objects = {f"p/{i % 20:02}/object-{i:04}.bin": payload(size, i)
               for i, size in enumerate(sizes)}
    put_objects(s3_client, source, objects)

    report = build_archive(s3_client, source, "p/", destination, "out.zip", THREE_BATCHES)

    assert len(report.plan.entries) == 2000
    assert len(report.results) == 3
    fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, "p/"))


def test_include_and_exclude_patterns_choose_the_entries(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    wanted = {
        "p/a.txt": b"a\n", "p/docs/readme.txt": b"readme\n",
        "p/docs/deep/note.txt": b"note\n", "p/big.dat": payload(11 * MiB, "dat"),
        "p/logs/2024/x.log": b"log\n",
    }
    unwanted = {
        "p/b.csv": b"1,2\n", "p/docs/skip-me.txt": b"skip\n", "p/img/photo.jpg": b"jpg",
        "p/sub/big.dat": payload(6 * MiB, "subdat"),  # `*.dat` stays in the top folder
        "q/a.txt": b"outside the prefix\n",
    }
    put_objects(s3_client, source, {**wanted, **unwanted})

    report = build_archive(s3_client, source, "p/", destination, "out.zip",
                           include=("**/*.txt", "*.dat", "logs/**"),
                           exclude=("**/skip-*",))

    assert report.plan.copy_parts >= 1
    fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(wanted, "p/"))


def test_full_keys_behind_a_name_prefix_when_strip_prefix_is_false(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    objects = {"data/2024/": b"", "data/2024/a.txt": b"a\n",
               "data/2024/sub/b.bin": payload(7 * MiB, "b")}
    put_objects(s3_client, source, {**objects, "data/2023/c.txt": b"other year\n"})

    report = build_archive(s3_client, source, "data/2024/", destination, "out.zip",
                           naming=NamingOptions(strip_prefix=False, name_prefix="export/"))

    assert report.plan.skipped_keys == []  # the marker is the folder entry export/data/2024/
    fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, "", name_prefix="export/"))


def test_name_prefix_goes_before_the_stripped_names(
        s3_client, bucket_pair, tmp_path, java_classes):
    source, destination = bucket_pair
    objects = {"data/a.txt": b"a\n", "data/sub/b.bin": payload(6 * MiB, "b")}
    put_objects(s3_client, source, objects)

    report = build_archive(s3_client, source, "data/", destination, "out.zip",
                           naming=NamingOptions(name_prefix="backup-2024/"))

    fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(objects, "data/", name_prefix="backup-2024/"))


def test_an_archive_written_inside_its_own_source_prefix_leaves_itself_out(
        s3_client, bucket_pair, tmp_path, java_classes):
    bucket = bucket_pair[0]
    objects = {"p/a.txt": b"a\n", "p/b.bin": payload(7 * MiB, "b")}
    put_objects(s3_client, bucket, objects)
    expected = expected_entries(objects, "p/")

    first = build_archive(s3_client, bucket, "p/", bucket, "p/archive.zip")
    fetch_and_check(s3_client, bucket, "p/archive.zip", first, tmp_path, java_classes,
                    expected)

    again = build_archive(s3_client, bucket, "p/", bucket, "p/archive.zip")
    assert again.plan.skipped_keys == ["p/archive.zip"]
    fetch_and_check(s3_client, bucket, "p/archive.zip", again, tmp_path, java_classes,
                    expected)


def test_an_archive_of_a_whole_bucket_leaves_out_its_scratch_folder(
        s3_client, bucket_pair, tmp_path, java_classes):
    # The bucket is the source and the destination: temporary objects of this run and of
    # a run killed earlier sit under the scratch prefix, which is never archived. The
    # killed run's leftover is not this run's to delete: the cleanup job removes it.
    bucket = bucket_pair[0]
    objects = {"a.txt": b"a\n", "b.bin": payload(11 * MiB, "b"), "c/d.txt": b"d\n"}
    leftover = f"{DEFAULT_SCRATCH_PREFIX}killed-run/tail-000001"
    put_objects(s3_client, bucket, {**objects, leftover: b"left by a killed run"})

    report = build_archive(s3_client, bucket, "", bucket, "all.zip",
                           PlanSettings(strategy=ZERO_STREAM))

    assert report.plan.temps(), "this run made temporary objects in the same bucket"
    assert report.plan.scratch_prefix.startswith(DEFAULT_SCRATCH_PREFIX)
    assert scratch_objects(s3_client, bucket) == [leftover]
    s3_client.delete_object(Bucket=bucket, Key=leftover)
    fetch_and_check(s3_client, bucket, "all.zip", report, tmp_path, java_classes,
                    expected_entries(objects))
