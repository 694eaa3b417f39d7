"""``reglab`` command line: ``list`` and ``info`` (the registry) here; ``bench`` (the lab),
``sts`` (embedding evaluation) and ``retrieval`` (index compression) are mounted from their packages."""

from __future__ import annotations

import argparse
import os
import sys


def _err(msg: str) -> int:
    print(f"reglab: error: {msg}", file=sys.stderr)
    return 2


def _verdicts(path: str | None, names: list[str], with_scale: bool = False) -> dict[tuple[str, int], str]:
    """Last verdict per (name, claim index) from a lab results file; the lab loads only when asked."""
    if not path:
        return {}
    from reglab.bench.cli import verdicts_from

    return verdicts_from(path, names, with_scale=with_scale)


def _default_results(path: str | None) -> str | None:
    """``--results``, else the default ``reglab bench`` output folder when it exists."""
    if path:
        return path
    from reglab.bench.cli import DEFAULT_OUT

    return DEFAULT_OUT if os.path.exists(os.path.join(DEFAULT_OUT, "results.jsonl")) else None


def cmd_list(args: argparse.Namespace) -> int:
    from reglab.core.registry import get, list_regularizers

    names = list_regularizers()
    verdicts = _verdicts(_default_results(args.results), names)
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
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from reglab.core.errors import UnknownRegularizerError
    from reglab.core.registry import info

    try:
        entry = info(args.name)
    except UnknownRegularizerError as e:
        return _err(str(e))
    print(entry)
    results = _default_results(args.results)
    verdicts = _verdicts(results, [entry.name], True)
    if results and entry.claims:
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
    return 0


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
                    "verdicts to show; default ./reglab-bench when it holds results")
    ls.set_defaults(func=cmd_list)
    inf = sub.add_parser("info", help="one registry entry: formula, defaults, paper, claims")
    inf.add_argument("name")
    inf.add_argument("--results", metavar="FILE|DIR", help="a results.jsonl or folder (default ./reglab-bench)")
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
