"""``reglab`` command line: ``list`` and ``info`` (the registry) here; ``bench`` (the lab),
``sts`` (embedding evaluation) and ``retrieval`` (index compression) are mounted from their packages."""

from __future__ import annotations

import argparse
import os
import sys


def _err(msg: str) -> int:
    print(f"reglab: error: {msg}", file=sys.stderr)
    return 2


def _verdict_source(results: str | None, names: list[str], with_scale: bool = False):
    """The verdicts to show and a line naming their file, seeds and quick/full
    (``reglab.bench.shipped``); the lab loads only here."""
    from reglab.bench.shipped import verdict_source

    return verdict_source(results, names, with_scale)


def cmd_list(args: argparse.Namespace) -> int:
    from reglab.core.registry import get, list_regularizers

    names = list_regularizers()
    source = _verdict_source(args.results, names)
    verdicts = source.verdicts
    rows = []
    for name in names:
        cls = get(name)
        claims = tuple(getattr(cls, "claims", ()))
        claim = f"{len(claims)}: {claims[0].statement[:60]}" if claims else "–"
        last = "; ".join(
            verdicts[(name, i)] if (name, i) in verdicts else "not testable here"
            for i, c in enumerate(claims) if (name, i) in verdicts or not c.testable
        ) or "–"
        cite = cls.paper.short_cite() if getattr(cls, "paper", None) is not None else "classic"
        rows.append((name, cls.kind, cite, claim, last))
    header = ("name", "kind", "paper", "claims", "last verdict")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(f"\n{source.description}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from reglab.core.errors import UnknownRegularizerError
    from reglab.core.registry import info

    try:
        entry = info(args.name)
    except UnknownRegularizerError as e:
        return _err(str(e))
    print(entry)
    source = _verdict_source(args.results, [entry.name], with_scale=True)
    verdicts = source.verdicts
    if entry.claims:
        print("  lab verdicts (toy scale; `reglab bench` reruns them):")
        for i, claim in enumerate(entry.claims):
            head = f"    #{i + 1} {claim.statement}"
            if not claim.testable:
                print(f"{head}\n       not testable at the lab's scale: {claim.untestable_reason}")
                continue
            text = verdicts.get((entry.name, i), "no verdict in these results (not run)")
            print(f"{head}\n       {claim.kind}, {claim.metric} on {claim.task}: {text}")
            if claim.control is not None:
                print(f"       negative control: {claim.control.label}")
            print(f"       tuning: {claim.tuning.describe()}")
        print(f"  ({source.description})")
    _print_usage(entry.name)
    return 0


def _print_usage(name: str) -> None:
    """A runnable usage snippet for the entry (``reglab.usage``), kept apart from the verdict lines."""
    from reglab.usage import usage_snippet

    try:
        snippet = usage_snippet(name)
    except KeyError:
        return
    print("  usage:")
    for line in snippet.rstrip().splitlines():
        print(f"    {line}" if line else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reglab", description="reglab: regularizers from the papers, and a lab that checks their claims."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from reglab.bench import cli as bench_cli
    from reglab.embeddings import cli as sts_cli

    bench_cli.register(sub)
    ls = sub.add_parser("list", help="the registry: name, kind, paper, claims, last verdict")
    ls.add_argument("--results", metavar="FILE|DIR", help="a results.jsonl (or the bench's --out folder) whose "
                    "verdicts to show (or a verdicts.json); default ./reglab-bench when it holds full runs, "
                    "else the lab run shipped with reglab")
    ls.set_defaults(func=cmd_list)
    inf = sub.add_parser("info", help="one registry entry: formula, defaults, paper, claims")
    inf.add_argument("name")
    inf.add_argument("--results", metavar="FILE|DIR", help="a results.jsonl or folder, or a verdicts.json "
                     "(default ./reglab-bench when it holds full runs, else the shipped lab run)")
    inf.set_defaults(func=cmd_info)
    sts_cli.register(sub)
    sts_cli.register_retrieval(sub)
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
