"""A local S3-compatible endpoint (moto's server) for `medrec dev` and the tests.

It speaks the S3 HTTP API on loopback, so uploads and downloads go over real HTTP exactly as they
would to S3; it does not check signatures or POST policies, which the tests assert separately.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# One line per request, at DEBUG: werkzeug's INFO lines went to stderr unasked, in between
# `medrec dev`'s own output and the tests' (issue 23).
logger = logging.getLogger("medrec.local_s3")


@contextmanager
def local_s3(*, bucket: str, region: str, port: int = 0) -> Iterator[str]:
    """Serves S3 on 127.0.0.1 with ``bucket`` created; yields the endpoint URL."""
    try:  # moto (and boto3 with it) comes with the dev extra, not in production images
        import boto3
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as error:
        raise RuntimeError("the local S3 endpoint needs: pip install 'moto[s3,server]'") from error

    class RequestHandler(MotoRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            logger.debug('"%s" %s %s', self.requestline, code, size)

    # What moto's ThreadedMotoServer does, with the request handler above in place of its own.
    server = make_server(
        "127.0.0.1",
        port,
        DomainDispatcherApplication(create_backend_app),
        threaded=True,
        request_handler=RequestHandler,
    )
    # A short poll keeps stopping quick: shutdown() waits for the loop to notice.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="local-s3", daemon=True
    )
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
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
        server.shutdown()
        thread.join()
