"""``reglab`` command line: ``bench``, ``list``, ``info`` (the lab) and ``sts``."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reglab", description="reglab: regularizers from the papers, and a lab that checks their claims."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from reglab.bench import cli as bench_cli
    from reglab.embeddings import cli as sts_cli

    bench_cli.register(sub)
    sts_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
