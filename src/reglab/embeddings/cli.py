"""CLI subcommands ``reglab sts`` and ``reglab retrieval``."""

from __future__ import annotations

import argparse
import json
import sys


#: the default data, as the sts / retrieval help and "using ..." lines name them
_SHIPPED = "the SemEval STS 2012–2014 test files shipped with reglab (12 files"
_DEFAULT_HELP = f"{_SHIPPED}; see NOTICE)"


def _describe_default(found) -> str:
    """The default data folder, named for the "using ..." line (the shipped files say what they are)."""
    from reglab.embeddings.sts import shipped_data_dir

    if found == shipped_data_dir():
        return f"{_SHIPPED}; terms: {found / 'NOTICE.md'})"
    return f"{found} ($REGLAB_STS_DATA)"


class _Steps:
    """Progress of a long command, on stderr: at a terminal a rich bar per stage (encoding,
    arms, indexes); otherwise a line at each tenth of a stage (quiet logs)."""

    def __init__(self, prog: str, tty: bool | None = None):
        self.prog = prog
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.stage: str | None = None
        self.shown = -1  # the last tenth printed (not a terminal)
        self._bar = None
        self._task = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.shown = stage, -1
            if self.tty:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

                self._bar = Progress(
                    TextColumn(f"{self.prog}: {stage}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                )  # fmt: skip
                self._bar.start()
                self._task = self._bar.add_task(stage, total=total)
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total)
            return
        tenth = 10 * done // max(total, 1)
        if tenth > self.shown:
            self.shown = tenth
            print(f"{self.prog}: {stage} {done}/{total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


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
                "reglab sts: no STS files given, $REGLAB_STS_DATA is unset and this install lacks the STS files "
                "shipped with reglab (reglab/data/sts; reinstall reglab).\n"
                "  Files hold score<TAB>sentence1<TAB>sentence2 per line. The SemEval STS 2012-2014 test sets "
                "(Agirre et al.) are in the public repository brmson/dataset-sts under data/sts/semeval-sts "
                "(MSRpar and the 2013 SMT set under their own licenses: Microsoft Research's, LDC's). "
                "Then: reglab sts PATH (or set REGLAB_STS_DATA=PATH), or reglab sts --hf NAME.",
                file=sys.stderr,
            )
            return 2
        args.paths = [str(found)]
        print(f"reglab sts: using {_describe_default(found)}", file=sys.stderr)
    names = ["minilm", "static"] if args.encoder == "all" else [args.encoder]
    outputs = []
    failed = False
    for name in names:
        try:  # our own progress bar (below), not the encoder's
            enc = get_encoder(name, cache_dir=args.cache, use_cache=not args.no_cache, progress=False)
        except TextExtraMissing as err:
            print(f"reglab sts: {err}", file=sys.stderr)
            return 2
        steps = _Steps("reglab sts")
        try:
            report = evaluate_sts(
                enc, args.paths, arms, limit_per_file=args.limit,
                progress=lambda msg: print(f"reglab sts: {msg}", file=sys.stderr, flush=True), steps=steps,
            )  # fmt: skip
        except (FileNotFoundError, ValueError) as err:
            print(f"reglab sts: {err}", file=sys.stderr)
            return 2
        finally:
            steps.close()
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
            "Transforms are fitted on the distinct sentences of the evaluation pool only. "
            "An arm that cannot run on these data (e.g. whiten-k128 on fewer than 129 sentences) is skipped "
            "with its reason; an arm that fails is reported and the others stand. Exit status 1 if an arm "
            "failed, 2 on bad input (files, encoder output), else 0."
        ),
    )
    p.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="STS files or folders (all *.tsv below); default: $REGLAB_STS_DATA if set, else " + _DEFAULT_HELP,
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


# ---------------------------------------------------------------------------
# reglab retrieval


def _load_npy(path: str | None):
    import numpy as np

    return None if path is None else np.load(path)


def run_retrieval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from reglab.core import RegularizerInputError
    from reglab.embeddings.retrieval import (
        describe,
        evaluate_retrieval,
        format_table,
        plot_recall_vs_bytes,
        sts_retrieval_set,
    )

    from reglab.embeddings.sts import encode_checked

    def say(msg: str) -> None:
        print(f"reglab retrieval: {msg}", file=sys.stderr, flush=True)

    steps = _Steps("reglab retrieval")

    if args.beir:
        if args.paths or args.vectors or args.queries:
            print("reglab retrieval: give --beir, STS paths or --vectors/--queries, not several", file=sys.stderr)
            return 2
        return _run_beir(args, say)
    try:
        ks = tuple(int(k) for k in args.k.split(","))
    except ValueError:
        print(f"reglab retrieval: --k expects comma-separated integers, got {args.k!r}", file=sys.stderr)
        return 2
    try:
        if args.vectors or args.queries:
            if not (args.vectors and args.queries):
                print("reglab retrieval: --vectors and --queries go together", file=sys.stderr)
                return 2
            if args.paths:
                print("reglab retrieval: give STS paths or --vectors/--queries, not both", file=sys.stderr)
                return 2
            inputs = dict(
                database=_load_npy(args.vectors), queries=_load_npy(args.queries),
                relevant=_load_npy(args.relevant), fit_queries=_load_npy(args.fit_queries),
                source=f"{Path(args.vectors).name} / {Path(args.queries).name}",
            )  # fmt: skip
        else:
            from reglab.embeddings.encoders import TextExtraMissing, get_encoder

            paths = args.paths
            if not paths:
                from reglab.embeddings.sts import default_data_dir

                found = default_data_dir()
                if found is None:
                    print(
                        "reglab retrieval: no STS files given, $REGLAB_STS_DATA is unset and this install lacks the "
                        "STS files shipped with reglab (reinstall reglab); "
                        "give STS paths (see `reglab sts --help`) or --vectors X.npy --queries Q.npy",
                        file=sys.stderr,
                    )
                    return 2
                paths = [str(found)]
                say(f"using {_describe_default(found)}")
            data = sts_retrieval_set(paths, min_score=args.min_score, limit=args.limit)
            try:  # our own progress bar, not the encoder's
                enc = get_encoder("minilm", cache_dir=args.cache, use_cache=not args.no_cache, progress=False)
            except TextExtraMissing as err:
                print(f"reglab retrieval: {err}", file=sys.stderr)
                return 2
            say(f"encoding {len(data.sentences)} distinct sentences of {data.n_files} STS file(s) with MiniLM")
            try:
                vecs = encode_checked(enc, data.sentences, steps)
            finally:
                steps.close()
            inputs = dict(
                database=vecs, queries=vecs[data.queries], relevant=data.relevant, exclude=data.queries,
                fit_queries=vecs[data.fit_queries] if len(data.fit_queries) >= 2 else None,
                source=f"STS 2012-2014 sentences, MiniLM, pairs with gold ≥ {args.min_score:g} as queries",
            )  # fmt: skip
        relevance = "" if args.vectors else f"its STS pair, gold score ≥ {args.min_score:g} of 5"
        try:
            # a bar over the indexes at a terminal, else a line per index
            report = evaluate_retrieval(**inputs, ks=ks, progress=None if steps.tty else say,
                                        steps=steps if steps.tty else None)  # fmt: skip
        finally:
            steps.close()
    except (FileNotFoundError, ValueError, OSError, RegularizerInputError) as err:
        print(f"reglab retrieval: {err}", file=sys.stderr)
        return 2
    table = format_table(report)
    text = describe(report, relevance) + "\n\n" + table + "\n"
    print(text, flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "retrieval.md").write_text(text, encoding="utf-8")
        try:
            plot = plot_recall_vs_bytes(report, out / "retrieval_plot.png")
            say(f"wrote {out / 'retrieval.md'} and {plot}")
        except ImportError:
            say(f"wrote {out / 'retrieval.md'}; no plot (pip install matplotlib)")
    for row in report.failed:
        say(f"{row.method}: {row.note} (the other rows stand)")
    return 1 if report.failed else 0


def _run_beir(args: argparse.Namespace, say) -> int:
    """``reglab retrieval --beir DIR``: relevance metrics on a BEIR-layout folder (or a BEIR dataset name)."""
    import json as _json
    from pathlib import Path

    from reglab.core import RegularizerInputError
    from reglab.embeddings.beir import (
        BeirFormatError,
        describe_beir,
        encode_beir,
        evaluate_beir,
        format_beir_table,
        load_beir,
        plot_ndcg_vs_bytes,
        results_json,
    )
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder

    try:
        data = load_beir(args.beir, split=args.split)
        try:
            enc = get_encoder("minilm", use_cache=False, progress=sys.stderr.isatty())
        except TextExtraMissing as err:
            print(f"reglab retrieval: {err}", file=sys.stderr)
            return 2
        say(f"{data.name} ({data.split}): {len(data.doc_ids)} documents, {len(data.query_ids)} queries; "
            f"encoding with {enc.name} (cached by file hash)")  # fmt: skip
        docs, queries, fit = encode_beir(data, enc, cache_dir=args.cache, use_cache=not args.no_cache)
        from reglab.embeddings.retrieval import beir_methods

        skip = [w.strip().lower() for w in (args.skip or "").split(",") if w.strip()]
        methods = [m for i, m in enumerate(beir_methods(docs.shape[1])) if i == 0 or not any(w in m.label.lower() for w in skip)]
        report = evaluate_beir(data, docs, queries, fit, methods=methods, progress=say, encoder=enc.name)
    except (BeirFormatError, FileNotFoundError, ValueError, OSError, ImportError, RegularizerInputError) as err:
        print(f"reglab retrieval: {err}", file=sys.stderr)
        return 2
    text = describe_beir(report) + "\n\n" + format_beir_table(report) + "\n"
    print(text, flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(_json.dumps(results_json(report), indent=1) + "\n", encoding="utf-8")
        (out / "results.md").write_text(text, encoding="utf-8")
        try:
            plot = plot_ndcg_vs_bytes(report, out / "ndcg_vs_bytes.png")
            say(f"wrote {out / 'results.json'}, {out / 'results.md'} and {plot}")
        except ImportError:
            say(f"wrote {out / 'results.json'} and {out / 'results.md'}; no plot (pip install matplotlib)")
    failed = [r.method for r in report.rows if r.failed and not r.failed.startswith("skipped")]
    if failed:
        say(f"failed: {', '.join(failed)} (the other rows stand)")
    return 1 if report.rows[0].failed else 0


def register_retrieval(sub: argparse._SubParsersAction) -> None:
    """Add ``retrieval`` to the ``reglab`` parser."""
    p = sub.add_parser(
        "retrieval",
        help="compare compressed retrieval indexes (LVQ, LeanVec, faiss SQ/PQ): recall, bytes, speed",
        description=(
            "Embed the STS sentences with MiniLM (or load --vectors/--queries), then report recall@k against "
            "exact float32 cosine search, the relevant-item hit rate, bytes per vector and single-thread CPU "
            "queries/s for float32, LVQ-4/4x4/8, LeanVec-ID/OOD at d/2 and d/4, whitening + LVQ and faiss "
            "SQ8/SQ4/PQ (pip install faiss-cpu; skipped when absent). STS: the corpus is the distinct sentences; "
            "each pair with gold score >= --min-score gives a query (sentence1) whose relevant item is sentence2. "
            "An index that fails on these vectors is reported as FAILED with its cause and the other rows stand "
            "(exit status 1); bad input exits 2. "
            "With --beir DIR: relevance on a BEIR retrieval set instead (see docs/beir.md)."
        ),
    )
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="STS files or folders; default: $REGLAB_STS_DATA if set, else " + _DEFAULT_HELP)  # fmt: skip
    p.add_argument("--beir", metavar="DIR", help="a folder in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) "
                   "or a BEIR dataset name (downloaded once into $REGLAB_BEIR_CACHE or ~/.cache/reglab/beir): "
                   "nDCG@10, Recall@100, MRR@10 against the qrels for every method; --out gets results.json, "
                   "results.md and ndcg_vs_bytes.png")
    p.add_argument("--split", default="test", help="the qrels split of --beir (default test)")
    p.add_argument("--skip", default="", metavar="WORDS",
                   help="with --beir: leave out the methods whose name contains one of these comma-separated "
                   "words (case-insensitive), e.g. --skip OPQ (its training takes minutes); raw always runs")
    p.add_argument("--vectors", metavar="X.npy", help="database vectors (n, d) instead of STS")
    p.add_argument("--queries", metavar="Q.npy", help="query vectors (m, d), with --vectors")
    p.add_argument("--relevant", metavar="R.npy", help="one relevant database id per query (-1: none), for hit@k")
    p.add_argument("--fit-queries", metavar="F.npy", help="held-out query vectors to fit LeanVec-OOD "
                   "(its rows are skipped without them)")
    p.add_argument("--min-score", type=float, default=4.0, help="gold score (of 5) from which an STS pair is a query (default 4)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N pairs of each STS file")
    p.add_argument("--k", default="1,10,100", help="recall cut-offs (default 1,10,100)")
    p.add_argument("--out", default="reglab-retrieval", metavar="DIR",
                   help="where to write retrieval.md and retrieval_plot.png (default ./reglab-retrieval; '' for none)")
    p.add_argument("--cache", default=None, help="encoding cache folder (default $REGLAB_CACHE or ~/.cache/reglab/encodings)")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the encoding cache")
    p.set_defaults(func=run_retrieval)
