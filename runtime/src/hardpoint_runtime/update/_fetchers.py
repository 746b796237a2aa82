"""Fetchers for the TUF update client: a directory (removable media, air gap) and HTTP.

HTTP uses python-tuf's own ``Urllib3Fetcher``. The directory fetcher maps
``file://`` URLs under its root to files; python-tuf's ``FetcherInterface``
counts the bytes and stops past the length the metadata allows (endless data),
so the fetcher only has to stream in chunks and report missing files as HTTP 404
(the updater probes ``N+1.root.json`` until it gets a 404).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

__all__ = ["DirectoryFetcher", "RecordingFetcher"]

_CHUNK = 64 * 1024


class DirectoryFetcher(FetcherInterface):
    """Serve ``file://`` URLs from files under ``root``, as a mirror would.

    A URL outside ``root`` (``..``, symlinks leaving it) or of another scheme is
    refused; a missing file is ``DownloadHTTPError(..., 404)``.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def url_for(self, relative: str) -> str:
        """The URL of ``relative`` (``metadata``, ``targets``) under the root, for the updater."""
        return (self.root / relative).as_uri()

    def _fetch(self, url: str) -> Iterator[bytes]:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise DownloadError(f"directory fetcher serves only file:// URLs under {self.root}, not {url}")
        path = Path(url2pathname(unquote(parts.path)))
        try:
            resolved = path.resolve()
        except OSError as e:
            raise DownloadError(f"cannot resolve {path}: {e}") from e
        if not resolved.is_relative_to(self.root):
            raise DownloadError(f"{url} is outside the update directory {self.root}")
        try:
            handle = resolved.open("rb")
        except FileNotFoundError:
            raise DownloadHTTPError(f"{resolved} not found", 404) from None
        except IsADirectoryError:
            raise DownloadHTTPError(f"{resolved} is a directory", 404) from None
        except OSError as e:
            raise DownloadError(f"cannot read {resolved}: {e}") from e
        return self._chunks(handle)

    @staticmethod
    def _chunks(handle: BinaryIO) -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(_CHUNK):
                yield chunk


class RecordingFetcher(FetcherInterface):
    """Wrap a fetcher and remember the last URL asked for.

    python-tuf's exceptions do not carry the role they are about; the client
    names the role from the metadata file the updater fetched last.
    """

    def __init__(self, inner: FetcherInterface) -> None:
        self.inner = inner
        self.last_url: str | None = None
        self._streams: list[Iterator[bytes]] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.last_url = url
        stream = self.inner.fetch(url)
        self._streams.append(stream)
        return stream

    def close_streams(self) -> None:
        """Close the streams python-tuf abandoned (it stops reading past a length bound without closing)."""
        streams, self._streams = self._streams, []
        for stream in streams:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
