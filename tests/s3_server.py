"""A real S3 endpoint for tests: moto's HTTP server on 127.0.0.1, on a free port, for the session.

No in-process patching (`mock_aws`): the code under test talks HTTP to this server exactly as it
would to AWS, MinIO or any other S3-compatible store. Each test gets its own fresh bucket.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing-key",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_SESSION_TOKEN": "testing-token",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# Never let a developer's own AWS profile or config leak into a test (or a test into real AWS).
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
NO_FILE = "/nonexistent/aws"  # AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE point here


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def client(self):
        """A boto3 client of its own, independent of the code under test and of the environment."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=FAKE_CREDENTIALS["AWS_REGION"],
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
        )


@dataclass(frozen=True)
class S3Bucket:
    endpoint: S3Endpoint
    name: str

    def keys(self, prefix: str = "") -> list[str]:
        pages = (
            self.endpoint.client().get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.endpoint.client().get_object(Bucket=self.name, Key=key)["Body"].read()

    def put(self, key: str, data: bytes) -> str:
        """Upload directly (as an upstream system would); returns the new ETag without quotes."""
        return self.endpoint.client().put_object(Bucket=self.name, Key=key, Body=data)["ETag"].strip('"')

    def etag(self, key: str) -> str:
        return self.endpoint.client().head_object(Bucket=self.name, Key=key)["ETag"].strip('"')


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 and a port the OS picked; stopped when the session ends."""
    from moto.server import ThreadedMotoServer

    request_log = logging.getLogger("werkzeug")  # one INFO line per HTTP request otherwise
    previous_level = request_log.level
    request_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Endpoint(url=f"http://{host}:{port}")
    finally:
        server.stop()
        request_log.setLevel(previous_level)


@pytest.fixture
def s3_bucket(s3_endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A new, empty bucket on the server, with fake AWS credentials in the environment (restored after).

    The credentials reach the code under test only through boto3's own chain (the environment), as
    real credentials would in production.
    """
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", NO_FILE)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", NO_FILE)
    name = f"mlops-test-{uuid.uuid4().hex[:12]}"
    s3_endpoint.client().create_bucket(Bucket=name)
    return S3Bucket(endpoint=s3_endpoint, name=name)
