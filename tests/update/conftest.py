"""Fixtures for the update tests: real module wheels, a real TUF repository, served over HTTP on 127.0.0.1."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tufkit import SUPPLIER, Published, Served, Wheels, build_module_wheel

from hardpoint_runtime.update import UpdateClient, UpdateRepository


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    work = tmp_path_factory.mktemp("wheels")
    return Wheels(build_module_wheel(work, "1.0"), build_module_wheel(work, "1.1"))


@pytest.fixture
def published(tmp_path: Path, wheels: Wheels) -> Published:
    """A repository with one supplier ``acme`` (two keys, threshold 1) and blink 1.0 published."""
    keys, root_keys, supplier_keys = tmp_path / "keys", tmp_path / "offline-root-keys", tmp_path / "acme-keys"
    repo = UpdateRepository.create(tmp_path / "repo", keys_dir=keys, root_keys_dir=root_keys)
    repo.add_supplier(SUPPLIER, keys_dir=supplier_keys, threshold=1, key_count=2)
    target = repo.publish(SUPPLIER, wheels.v1)
    return Published(repo, keys, root_keys, supplier_keys, target)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Any]:
    """``serve(directory) -> Served``: serve a directory over HTTP on 127.0.0.1 (port 0) in a thread."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(directory: Path) -> Served:
        requests: list[str] = []

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

        handler = functools.partial(Handler, directory=str(directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return Served(f"http://127.0.0.1:{server.server_address[1]}", requests)

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(params=["http", "directory"])
def client_for(request: pytest.FixtureRequest, tmp_path: Path, serve: Any) -> Iterator[Callable[..., UpdateClient]]:
    """``client_for(repo, trusted_root=None)``: a new client (one updater) sharing one metadata and download dir."""
    made: list[UpdateClient] = []
    served: list[Served] = []

    def make(repo: UpdateRepository, *, trusted_root: bytes | None = None) -> UpdateClient:
        metadata, downloads = tmp_path / "client-metadata", tmp_path / "installs"
        if request.param == "directory":
            client = UpdateClient.from_directory(repo.path, metadata, download_dir=downloads, trusted_root=trusted_root)
        else:
            if not served:
                served.append(serve(repo.path))
            client = UpdateClient(
                metadata,
                metadata_url=f"{served[0].url}/metadata/",
                target_url=f"{served[0].url}/targets/",
                download_dir=downloads,
                trusted_root=trusted_root,
            )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
