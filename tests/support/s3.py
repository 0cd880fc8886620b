"""moto's S3 server in a subprocess: the real S3 protocol on 127.0.0.1, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3

from tests.support.server import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def public_read(bucket: str) -> dict:
    """The bucket policy docs/scaling.md gives for direct output URLs: anyone may read the
    objects."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
            }
        ],
    }


class MotoS3:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **CREDENTIALS},
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url, timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        self.client = boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )

    def bucket(self, name: str, public: bool = False) -> dict:
        """Create ``name`` and return the environment a server needs to store files in it.

        Private by default, as S3 makes new buckets (moto then refuses unsigned reads with
        403): the output URLs are the server's, which redirect to signed ones. ``public``
        gives it the policy that direct output URLs (``DRAGON_S3_DIRECT_URLS``) need."""
        self.client.create_bucket(Bucket=name)
        if public:
            self.client.put_bucket_policy(Bucket=name, Policy=json.dumps(public_read(name)))
        return {**CREDENTIALS, "DRAGON_S3_BUCKET": name, "DRAGON_S3_ENDPOINT_URL": self.url}

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()
