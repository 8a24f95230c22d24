"""A local S3-compatible endpoint (moto's server) for `medrec dev` and the tests.

It speaks the S3 HTTP API on loopback, so uploads and downloads go over real HTTP exactly as they
would to S3; it does not check signatures or POST policies, which the tests assert separately.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def local_s3(*, bucket: str, region: str, port: int = 0) -> Iterator[str]:
    """Serves S3 on 127.0.0.1 with ``bucket`` created; yields the endpoint URL."""
    try:  # moto (and boto3 with it) comes with the dev extra, not in production images
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise RuntimeError("the local S3 endpoint needs: pip install 'moto[s3,server]'") from error

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound_port = server.get_host_and_port()
        url = f"http://{host}:{bound_port}"
        client = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=url,
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto accepts any credentials
        )
        configuration = {} if region == "us-east-1" else {"LocationConstraint": region}
        client.create_bucket(Bucket=bucket, CreateBucketConfiguration=configuration)
        yield url
    finally:
        server.stop()
