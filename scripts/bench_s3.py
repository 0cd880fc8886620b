"""The S3 store's added time: a 10 MB output through ``S3Backend.save`` against a plain
aiobotocore ``put_object`` of the same file, both against moto in server mode on this box.

Run: .venv/bin/python scripts/bench_s3.py   (median of 7 each, run alternately)
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from aiobotocore.session import get_session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import free_port  # noqa: E402

from dragon.config import Settings  # noqa: E402
from dragon.stores.s3 import S3Backend  # noqa: E402

CREDS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


async def measure(url: str, path: Path) -> tuple[list[float], list[float]]:
    backend = S3Backend(
        Settings.load(env={"DRAGON_S3_BUCKET": "bench", "DRAGON_S3_ENDPOINT_URL": url})
    )
    await backend.start()
    ours, plain = [], []
    try:
        async with get_session().create_client("s3", endpoint_url=url) as client:
            for i in range(7):
                t0 = time.perf_counter()
                body = await asyncio.to_thread(path.read_bytes)
                await client.put_object(
                    Bucket="bench",
                    Key=f"plain/{i}",
                    Body=body,
                    ContentType="application/octet-stream",
                )
                plain.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await backend.save(f"ours/{i}", path, "application/octet-stream")
                ours.append(time.perf_counter() - t0)
    finally:
        await backend.close()
    return plain, ours


def main() -> None:
    os.environ.update(CREDS)
    port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench")
        path = Path(tempfile.mkdtemp()) / "out.bin"
        path.write_bytes(os.urandom(10 * 1024 * 1024))
        plain, ours = asyncio.run(measure(url, path))
    finally:
        moto.terminate()
    p, o = statistics.median(plain), statistics.median(ours)
    print(
        f"10 MB to moto: plain put_object {p * 1000:.0f} ms, S3Backend.save {o * 1000:.0f} ms,"
        f" added {1000 * (o - p):+.0f} ms ({o / p:.2f}x)"
    )


if __name__ == "__main__":
    main()
