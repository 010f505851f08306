"""A real S3 server on loopback for the reconciliation tests: moto's server mode, in a thread."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
from moto.server import ThreadedMotoServer

#: moto accepts any key; these only have to be the same everywhere.
ACCESS_KEY = "hub-test-access"
SECRET_KEY = "hub-test-secret-" + "s" * 16


@dataclass(frozen=True)
class S3Server:
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            endpoint_override=f"{self.host}:{self.port}",
            scheme="http",
            region="us-east-1",
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            allow_bucket_creation=True,
        )

    def bucket(self, name: str) -> pafs.S3FileSystem:
        filesystem = self.filesystem()
        filesystem.create_dir(name)
        return filesystem

    def upload(self, folder: Path, destination: str) -> None:
        """Every file under ``folder`` to ``bucket/prefix`` (``destination``)."""
        pafs.copy_files(str(folder), destination, destination_filesystem=self.filesystem())

    def keys(self, prefix: str) -> list[str]:
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        infos = self.filesystem().get_file_info(selector)
        return sorted(i.path for i in infos if i.type == pafs.FileType.File)


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """moto's S3 on a free loopback port (the kernel picks it), stopped on exit."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield S3Server(host, port)
    finally:
        server.stop()
