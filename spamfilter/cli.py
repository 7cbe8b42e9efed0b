"""The `spamfilter` command: project tasks that are not DVC stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from spamfilter import entry
from spamfilter.config import Settings


def _data(args: argparse.Namespace) -> int:
    from spamfilter.acquire import obtain

    settings = Settings()
    print(obtain(args.raw_dir, args.dvc_file, settings.spam_data, settings.spam_data_url, force=args.force))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spamfilter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser(
        "data", help="obtain the raw corpus: SPAM_DATA file, else `dvc pull`, else the UCI download (sha256-checked)"
    )
    data.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    data.add_argument("--dvc-file", type=Path, default=Path("data.dvc"))
    data.add_argument("--force", action="store_true", help="download again from SPAM_DATA_URL even if data/raw has a corpus")
    data.set_defaults(handler=_data)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: list[str] | None = None) -> int:
    return entry.run(_main, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
