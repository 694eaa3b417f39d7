"""CLI subcommand ``reglab sts``."""

from __future__ import annotations

import argparse
import json
import sys


def _arms(spec: str | None) -> dict:
    from reglab.embeddings.sts import DEFAULT_ARMS

    if not spec:
        return dict(DEFAULT_ARMS)
    if spec.lstrip().startswith("{"):
        return json.loads(spec)  # {"column": {"name": ...} or null}
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in DEFAULT_ARMS]
    if unknown:
        raise SystemExit(f"reglab sts: unknown arm(s) {unknown}; built-in arms: {list(DEFAULT_ARMS)}")
    return {n: DEFAULT_ARMS[n] for n in names}


def run(args: argparse.Namespace) -> int:
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder
    from reglab.embeddings.sts import evaluate_sts, format_report

    arms = _arms(args.arms)
    if args.hf:
        import tempfile

        from reglab.embeddings.sts import load_hf_sts

        try:
            args.paths = [str(load_hf_sts(args.hf, tempfile.mkdtemp(prefix="reglab-sts-"), split=args.hf_split))] + list(args.paths)
        except (ImportError, ValueError, FileNotFoundError) as err:
            print(f"reglab sts: {err}", file=sys.stderr)
            return 2
    if not args.paths:
        from reglab.embeddings.sts import default_data_dir

        found = default_data_dir()
        if found is None:
            print(
                "reglab sts: no STS files given and none found at $REGLAB_STS_DATA or ../shared/data/sts.\n"
                "  Files hold score<TAB>sentence1<TAB>sentence2 per line. The SemEval STS 2012-2014 test sets "
                "(Agirre et al.) are in the public repository brmson/dataset-sts under data/sts/semeval-sts; "
                "their licenses (Microsoft Research's for MSRpar, LDC's for SMT) do not allow reglab to ship them. "
                "Download them, then: reglab sts PATH (or set REGLAB_STS_DATA=PATH).",
                file=sys.stderr,
            )
            return 2
        args.paths = [str(found)]
        print(f"reglab sts: using {found}", file=sys.stderr)
    names = ["minilm", "static"] if args.encoder == "all" else [args.encoder]
    outputs = []
    failed = False
    for name in names:
        try:
            enc = get_encoder(name, cache_dir=args.cache, use_cache=not args.no_cache, progress=sys.stderr.isatty())
        except TextExtraMissing as err:
            print(f"reglab sts: {err}", file=sys.stderr)
            return 2
        try:
            report = evaluate_sts(
                enc, args.paths, arms, limit_per_file=args.limit,
                progress=lambda msg: print(f"reglab sts: {msg}", file=sys.stderr, flush=True),
            )  # fmt: skip
        except (FileNotFoundError, ValueError) as err:
            print(f"reglab sts: {err}", file=sys.stderr)
            return 2
        if not report.scores:
            print(f"reglab sts: every arm failed: {report.failed or report.skipped}", file=sys.stderr)
            return 1
        outputs.append(format_report(report, markdown=args.markdown, per_file=not args.mean_only))
        print(outputs[-1] + "\n", flush=True)
        failed = failed or bool(report.failed)
    return 1 if failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sts`` to the ``reglab`` parser."""
    p = sub.add_parser(
        "sts",
        help="evaluate embedding transforms on STS files (Spearman/Pearson of cosine)",
        description=(
            "Evaluate an encoder on STS files (score<TAB>s1<TAB>s2; lines without a score are skipped) "
            "and print per-file and mean Spearman and Pearson for each transform side by side. "
            "Transforms are fitted on the distinct sentences of the evaluation pool only."
        ),
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="STS files or folders (all *.tsv below); default $REGLAB_STS_DATA or ../shared/data/sts",
    )  # fmt: skip
    p.add_argument("--hf", metavar="NAME", help="also an STS dataset from Hugging Face (e.g. mteb/stsbenchmark-sts; online) "
                   "or a datasets save_to_disk folder")
    p.add_argument("--hf-split", default="test", metavar="SPLIT", help="the split of --hf (default test)")
    p.add_argument(
        "--encoder",
        choices=["minilm", "static", "all"],
        default="minilm",
        help="minilm: all-MiniLM-L6-v2 sentence embeddings; static: mean of its input token embeddings",
    )
    p.add_argument(
        "--arms",
        default=None,
        help="comma-separated built-in arms (raw,center,whiten,whiten-k128,abtt,zipfian; default all) "
        'or a JSON object {"column": {"name": "whitening", "k": 64}, "raw": null}',
    )
    p.add_argument("--cache", default=None, help="encoding cache folder (default $REGLAB_CACHE or ~/.cache/reglab/encodings)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the encoding cache")
    p.add_argument("--limit", type=int, default=None, help="use only the first N pairs of each file")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--mean-only", action="store_true", help="print only the mean row")
    p.set_defaults(func=run)
