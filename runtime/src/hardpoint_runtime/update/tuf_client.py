"""``hardpoint-tuf-client``: the tuf-conformance client command line, on hardpoint's update client.

Protocol (theupdateframework/tuf-conformance ``CLIENT-CLI.md``)::

    hardpoint-tuf-client --metadata-dir DIR init TRUSTED_ROOT_FILE
    hardpoint-tuf-client --metadata-dir DIR --metadata-url URL refresh
    hardpoint-tuf-client --metadata-dir DIR --metadata-url URL --target-name NAME [--target-name NAME ...]
                         --target-base-url URL --target-dir DIR download

``init`` copies the trusted root to ``DIR/root.json`` and makes no request.
Trusted metadata stays in ``DIR`` as non-versioned files (``root.json``,
``timestamp.json``, ...). ``download`` processes its targets in order with one
updater and stops at the first failure; a target already in ``--target-dir``
with matching length and hashes is not downloaded again. Exit status 0 on
success, 1 on any failure (the reason on standard error).

It runs :class:`hardpoint_runtime.update.UpdateClient`, the daemon's update client.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hardpoint_runtime.update._client import UpdateClient, initialize_trust
from hardpoint_runtime.update._errors import UpdateError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hardpoint-tuf-client",
        description="TUF client for the tuf-conformance suite, backed by hardpoint's update client",
    )
    parser.add_argument("--metadata-dir", required=True, type=Path, help="trusted metadata, kept between calls")
    parser.add_argument("--metadata-url", help="base URL of the repository's metadata")
    parser.add_argument("--target-name", action="append", default=[], help="TUF target path (repeatable)")
    parser.add_argument("--target-base-url", help="base URL of the repository's targets")
    parser.add_argument("--target-dir", type=Path, help="where verified targets are stored")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="trust the given root; no request is made")
    init.add_argument("trusted_root", type=Path)
    commands.add_parser("refresh", help="update the top-level metadata")
    commands.add_parser("download", help="download and verify the --target-name targets in order")
    return parser


def _run(args: argparse.Namespace) -> None:
    if args.command == "init":
        initialize_trust(args.metadata_dir, args.trusted_root.read_bytes())
        return
    if not args.metadata_url:
        raise UpdateError(f"{args.command} needs --metadata-url")
    if args.command == "refresh":
        with UpdateClient(args.metadata_dir, metadata_url=args.metadata_url, target_url=None, download_dir=None) as c:
            c.refresh()
        return
    if not args.target_name or not args.target_base_url or args.target_dir is None:
        raise UpdateError("download needs --target-name, --target-base-url and --target-dir")
    with UpdateClient(
        args.metadata_dir,
        metadata_url=args.metadata_url,
        target_url=args.target_base_url,
        download_dir=args.target_dir,
    ) as client:
        for name in args.target_name:  # in order, one updater, stopping at the first failure
            result = client.fetch_target(name)
            state = "already present" if result.cached else "downloaded"
            print(f"{name}: {state}, verified (role {result.role}): {result.path}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 any failure)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 1
    try:
        _run(args)
    except UpdateError as e:
        print(f"hardpoint-tuf-client: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # any failure is exit status 1, by the protocol
        print(f"hardpoint-tuf-client: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
