"""Input that cannot become an archive fails with a clear error before anything is written:
no archive object and no multipart upload in the destination bucket afterwards.

Missing buckets, empty prefixes and archived storage classes run on SeaweedFS. Unsafe and
colliding names run on moto: SeaweedFS rewrites or refuses such keys (DESIGN: Local S3),
and a file and a folder of one path cannot both exist in its filesystem."""

import re
import uuid

import pytest
from botocore.exceptions import ClientError

from s3zip_dagster.core import runner
from s3zip_dagster.core.errors import NamingError, SourceError
from s3zip_dagster.core.runner import build_archive

from .archive_checks import (
    assert_nothing_written,
    expected_entries,
    fetch_and_check,
    no_uploads_left,
    put_objects,
)


@pytest.fixture
def begun(monkeypatch) -> list[tuple]:
    """The multipart uploads the runner began: none, when input is refused up front."""
    calls: list[tuple] = []
    real_begin = runner.begin_upload

    def begin_upload(*args, **kwargs):
        calls.append(args)
        return real_begin(*args, **kwargs)

    monkeypatch.setattr(runner, "begin_upload", begin_upload)
    return calls


def test_a_missing_source_bucket_is_named_in_a_source_error(s3_client, bucket_pair, begun):
    destination = bucket_pair[1]
    missing = f"missing-{uuid.uuid4().hex[:10]}"

    with pytest.raises(SourceError, match=f"s3://{missing}"):
        build_archive(s3_client, missing, "p/", destination, "out.zip")

    assert begun == []
    assert_nothing_written(s3_client, destination)


@pytest.mark.parametrize("include", [(), ("*.csv",)], ids=["no-key", "no-match"])
def test_a_prefix_with_nothing_to_archive_is_a_source_error(s3_client, bucket_pair, include,
                                                            begun):
    source, destination = bucket_pair
    put_objects(s3_client, source, {"q/a.txt": b"elsewhere\n", "p/a.txt": b"a\n"})
    prefix = "p/" if include else "nothing-here/"

    with pytest.raises(SourceError, match=re.escape(f"s3://{source}/{prefix} ")):
        build_archive(s3_client, source, prefix, destination, "out.zip", include=include)

    assert begun == []
    assert_nothing_written(s3_client, destination)


def test_a_missing_destination_bucket_is_named_and_not_created(s3_client, bucket_pair, begun):
    source = bucket_pair[0]
    put_objects(s3_client, source, {"p/a.txt": b"a\n"})
    missing = f"missing-{uuid.uuid4().hex[:10]}"

    with pytest.raises(SourceError, match=f"s3://{missing}"):
        build_archive(s3_client, source, "p/", missing, "out.zip")

    assert begun == []
    with pytest.raises(ClientError):
        s3_client.head_bucket(Bucket=missing)
    assert no_uploads_left(s3_client, source)


@pytest.mark.parametrize("storage_class", ["GLACIER", "DEEP_ARCHIVE"])
def test_archived_storage_classes_are_named_and_can_be_excluded(
        s3_client, bucket_pair, tmp_path, java_classes, begun, storage_class):
    # SeaweedFS accepts these storage classes on PUT and reports them in the listing.
    source, destination = bucket_pair
    readable = {"p/a.txt": b"a\n", "p/b.txt": b"b\n"}
    put_objects(s3_client, source, readable)
    put_objects(s3_client, source, {"p/cold.bin": b"frozen"}, StorageClass=storage_class)

    with pytest.raises(SourceError, match=re.escape(f"s3://{source}/p/cold.bin")) as error:
        build_archive(s3_client, source, "p/", destination, "out.zip")
    assert "exclude" in str(error.value)
    assert begun == []
    assert_nothing_written(s3_client, destination)

    report = build_archive(s3_client, source, "p/", destination, "out.zip",
                           exclude=("cold.bin",))
    fetch_and_check(s3_client, destination, "out.zip", report, tmp_path, java_classes,
                    expected_entries(readable, "p/"))


@pytest.fixture
def moto_buckets(moto_client):
    moto_client.create_bucket(Bucket="src")
    moto_client.create_bucket(Bucket="dst")
    return moto_client


@pytest.mark.parametrize(("prefix", "key", "reason"), [
    ("p/", "p/a/../b.txt", "'..' segment"),
    ("p/", "p/..", "'..' segment"),
    ("p/", "p/./x.txt", "'.' segment"),
    ("p/", "p/a//b.txt", "empty segment"),
    ("p/", "p//leading.txt", "starts with '/'"),
    ("", "/root.txt", "starts with '/'"),
    ("p/", "p/back\\slash.txt", "backslash"),
    ("p/", "p/C:/drive.txt", "drive letter"),
])
def test_an_unsafe_name_is_a_naming_error_that_names_the_key(moto_buckets, begun, prefix,
                                                              key, reason):
    put_objects(moto_buckets, "src", {"p/good.txt": b"fine\n", key: b"data"})

    with pytest.raises(NamingError) as error:
        build_archive(moto_buckets, "src", prefix, "dst", "out.zip")

    assert f"s3://src/{key} " in str(error.value)
    assert reason in str(error.value)
    assert "good.txt" not in str(error.value)
    assert begun == []
    assert_nothing_written(moto_buckets, "dst")


def test_every_unsafe_name_is_listed_in_one_error(moto_buckets, begun):
    unsafe = ["p/../up.txt", "p/a//b.txt", "p/c\\d.txt"]
    put_objects(moto_buckets, "src", {key: b"x" for key in unsafe})

    with pytest.raises(NamingError, match="3 source key") as error:
        build_archive(moto_buckets, "src", "p/", "dst", "out.zip")

    assert all(f"s3://src/{key} " in str(error.value) for key in unsafe)
    assert begun == []
    assert_nothing_written(moto_buckets, "dst")


# The entry mapping (prefix removed, name_prefix added) gives distinct keys distinct names,
# so two keys meet only where extraction makes two names one path: a file `x` and a folder
# `x/`, given by a folder marker or by a deeper key. Every extractor fails on those.
@pytest.mark.parametrize("folder_key", ["p/x/", "p/x/y.txt"], ids=["marker", "deeper-key"])
def test_a_file_and_a_folder_of_one_path_are_a_naming_error(moto_buckets, begun, folder_key):
    put_objects(moto_buckets, "src", {"p/x": b"a file", folder_key: b"",
                                      "p/other.txt": b"fine\n"})

    with pytest.raises(NamingError) as error:
        build_archive(moto_buckets, "src", "p/", "dst", "out.zip")

    assert "s3://src/p/x " in str(error.value)
    assert f"s3://src/{folder_key}" in str(error.value)
    assert begun == []
    assert_nothing_written(moto_buckets, "dst")
