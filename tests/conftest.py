"""Shared fixtures: the local S3 server, an in-memory moto S3, the compiled Java reader."""

import uuid
from pathlib import Path

import boto3
import pytest

from s3zip_dagster.local_s3 import LocalS3, free_ports

from .readers import compile_java


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory) -> Path:
    return compile_java(tmp_path_factory.mktemp("java"))


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory):
    """One SeaweedFS server on 127.0.0.1 for the whole session, on free ports."""
    server = LocalS3(tmp_path_factory.mktemp("seaweedfs"), free_ports())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_client(local_s3):
    return local_s3.client()


def delete_bucket(client, bucket: str) -> None:
    """Abort the bucket's uploads, delete its objects, then the bucket. SeaweedFS gives each
    bucket a volume of its own, out of some 70: a session that kept every bucket would run
    out of them ("No writable volumes") after as many tests."""
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:  # a page holds at most 1,000 keys, as many as one DeleteObjects takes
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def bucket_pair(s3_client):
    """A fresh source bucket and a fresh destination bucket, deleted after the test."""
    suffix = uuid.uuid4().hex[:10]
    source, destination = f"src-{suffix}", f"dst-{suffix}"
    s3_client.create_bucket(Bucket=source)
    s3_client.create_bucket(Bucket=destination)
    yield source, destination
    for bucket in (source, destination):
        delete_bucket(s3_client, bucket)


@pytest.fixture
def moto_client():
    """An in-memory S3 (moto): keeps keys verbatim, where SeaweedFS rewrites some."""
    from moto import mock_aws

    with mock_aws():
        yield boto3.client("s3", region_name="us-east-1", aws_access_key_id="invented-key",
                           aws_secret_access_key="invented-secret")
