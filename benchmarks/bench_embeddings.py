"""Post-hoc embedding transforms: reglab vs scikit-learn, CPU time, accuracy and peak memory.

    python benchmarks/bench_embeddings.py [--quick] [--repeats 20] [--n 100000] [--d 768] [--mem-n 1000000]

Data: n×d float32 "embeddings" with a power-law spectrum λ_i ∝ 1/i (condition
number d, as sentence embeddings roughly have), a random rotation and a mean
offset of 3·σ_max per coordinate (anisotropy). One thread for torch and for
numpy's BLAS (threadpoolctl), process CPU time, interleaved (``_harness.py``).

Rows:

* ``Whitening`` (PCA whitening, precision="auto" and "float64") vs
  scikit-learn's ``PCA(whiten=True)`` (its "covariance_eigh" solver for n ≫ d:
  Xᵀ X in float32, uncentered, then eigh in float32): ``fit`` and ``fit_transform``.
* ``ZipfianWhitening`` (Zipf frequencies 1/rank): no scikit-learn analog, shown alone.
* ``AllButTheTop(n_components=8)`` vs ``PCA(n_components=8)`` followed by removing
  the projection ``Xc − (Xc Vᵀ) V`` (scikit-learn's TruncatedSVD does not center, so it
  is not the same map and is not shown).
* ``Center`` vs ``X − X.mean(0)``; ``Normalize`` vs ``sklearn.preprocessing.normalize``.

Accuracy (whitening rows), against a float64 reference of the same float32 input (numpy
float64 mean and covariance Σ, no chunking): max abs(Cov(z) − I) of the float32 output
(population covariance for ours, n−1 for scikit-learn's, each its own convention); the
whitening metric error max abs(W Wᵀ − Σ⁻¹) / max abs(Σ⁻¹) (rotation-invariant: with
eigenvalues ∝ 1/i neighbouring eigenvectors are nearly degenerate, so single PCA columns
are not comparable, while W Wᵀ = Σ⁻¹ for every whitening W); and the error of the fitted
mean in whitened units, max abs((μ − μ_ref) W_ref).

Memory: peak RSS growth (``resource.getrusage``) of one ``fit_transform`` at ``--mem-n``
rows, each implementation in a fresh subprocess, beyond the float32 input itself.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import add_common_args, fmt_ms, markdown_table, measure, ratio, resolve_repeats, write_results  # noqa: E402

NAME = "embeddings"


def make_data(n: int, d: int, seed: int = 0) -> np.ndarray:
    """float32 rows with eigenvalues ∝ 1/i, rotated, offset; generated in chunks (no float64 n×d)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = np.sqrt(1.0 / np.arange(1, d + 1))
    rot = (scale[:, None] * q.T).astype(np.float32)  # z·diag(√λ)·Qᵀ
    mu = (3.0 * rng.standard_normal(d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for s in range(0, n, 65536):
        e = min(s + 65536, n)
        np.matmul(rng.standard_normal((e - s, d), dtype=np.float32), rot, out=x[s:e])
        x[s:e] += mu
    return x


def reference_whitening(x: np.ndarray):
    """float64 reference of the float32 input: mean, Σ⁻¹ and a whitening matrix."""
    x64 = x.astype(np.float64)
    mu = x64.mean(0)
    x64 -= mu
    lam, u = np.linalg.eigh(x64.T @ x64 / len(x64))
    return mu, (u / lam) @ u.T, u / np.sqrt(lam)


def accuracy(z: np.ndarray, mean: np.ndarray, w: np.ndarray, ref, ddof: int) -> dict[str, float]:
    """``w``: the fitted whitening matrix (d×k), population scale (ours; sklearn's rescaled by the caller)."""
    mu_ref, prec, w_ref = ref
    z64 = z.astype(np.float64)
    zc = z64 - z64.mean(0)
    cov = zc.T @ zc / (len(z) - ddof)
    with np.errstate(all="ignore"):  # a zero eigenvalue (scikit-learn clips negative ones) gives inf
        out = {
            "max_abs_cov_minus_I": float(np.abs(cov - np.eye(cov.shape[0])).max()),
            "metric_rel_err": float(np.abs(w @ w.T - prec).max() / np.abs(prec).max()),
            "mean_err_whitened": float(np.abs((mean - mu_ref) @ w_ref).max()),
        }
    return {k: (v if np.isfinite(v) else float("nan")) for k, v in out.items()}  # NaN → null in the JSON


def _ours(t, x):
    z = t.fit_transform(x)
    s = t.state_dict()
    return z, s["mean"].numpy(), s["matrix"].numpy()


def _sklearn(x):
    from sklearn.decomposition import PCA

    p = PCA(whiten=True)
    z = p.fit_transform(x)
    n = len(x)
    with np.errstate(divide="ignore"):
        w = p.components_.T.astype(np.float64) / np.sqrt(p.explained_variance_.astype(np.float64) * (n - 1) / n)
    return z, p.mean_.astype(np.float64), w


def _memory_child(impl: str, n: int, d: int) -> None:
    """Subprocess body: build the data, then one fit_transform; print peak RSS growth (bytes)."""
    import torch

    torch.set_num_threads(1)
    x = make_data(n, d)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if impl == "reglab":
        from reglab.embeddings import Whitening

        z = Whitening().fit_transform(x)
    else:
        from sklearn.decomposition import PCA

        z = PCA(whiten=True).fit_transform(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"impl": impl, "n": n, "d": d, "input_bytes": x.nbytes, "output_bytes": z.nbytes,
                      "peak_growth_bytes": peak - base, "peak_rss_bytes": peak}))


def memory(n: int, d: int) -> list[dict]:
    rows = []
    for impl in ("reglab", "sklearn"):
        cmd = [sys.executable, __file__, "--_memory-child", impl, str(n), str(d)]
        res = subprocess.run(cmd, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
        if res.returncode != 0:
            rows.append({"impl": impl, "n": n, "d": d, "error": res.stderr.strip().splitlines()[-1:]})
        else:
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return rows


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    return env


def run(args: argparse.Namespace) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize
    from threadpoolctl import threadpool_limits

    from reglab.embeddings import AllButTheTop, Center, Normalize, Whitening, ZipfianWhitening

    n, d = (5000, 128) if args.quick else (args.n, args.d)
    repeats = resolve_repeats(args)
    x = make_data(n, d)
    freq = 1.0 / np.arange(1, n + 1)
    D = 8

    def skl_abtt():
        p = PCA(n_components=D).fit(x)
        xc = x - p.mean_
        return xc - (xc @ p.components_.T) @ p.components_

    cases = {
        "reglab Whitening fit": lambda: Whitening().fit(x),
        "sklearn PCA(whiten) fit": lambda: PCA(whiten=True).fit(x),
        "reglab Whitening fit_transform": lambda: Whitening().fit_transform(x),
        "reglab Whitening(precision=float64) fit_transform": lambda: Whitening(precision="float64").fit_transform(x),
        "sklearn PCA(whiten) fit_transform": lambda: PCA(whiten=True).fit_transform(x),
        "reglab ZipfianWhitening fit_transform": lambda: ZipfianWhitening().fit_transform(x, frequencies=freq),
        "reglab AllButTheTop(8) fit_transform": lambda: AllButTheTop(n_components=D).fit_transform(x),
        "sklearn PCA(8) + removal": skl_abtt,
        "reglab Center fit_transform": lambda: Center().fit_transform(x),
        "numpy X − mean": lambda: x - x.mean(0),
        "reglab Normalize": lambda: Normalize().transform(x),
        "sklearn normalize": lambda: normalize(x),
    }
    with threadpool_limits(args.threads):
        stats = measure(cases, repeats=repeats, warmup=args.warmup, threads=args.threads)
        ref = reference_whitening(x)
        acc = {
            "reglab Whitening": accuracy(*_ours(Whitening(), x), ref, ddof=0),
            "reglab Whitening(precision=float64)": accuracy(*_ours(Whitening(precision="float64"), x), ref, ddof=0),
            "sklearn PCA(whiten)": accuracy(*_sklearn(x), ref, ddof=1),
        }
    pairs = [
        ("Whitening fit", "reglab Whitening fit", "sklearn PCA(whiten) fit"),
        ("Whitening fit_transform", "reglab Whitening fit_transform", "sklearn PCA(whiten) fit_transform"),
        ("Whitening(float64) fit_transform", "reglab Whitening(precision=float64) fit_transform",
         "sklearn PCA(whiten) fit_transform"),
        ("AllButTheTop(8) fit_transform", "reglab AllButTheTop(8) fit_transform", "sklearn PCA(8) + removal"),
        ("Center", "reglab Center fit_transform", "numpy X − mean"),
        ("Normalize", "reglab Normalize", "sklearn normalize"),
    ]
    ratios = {label: ratio(stats[ours], stats[peer]) for label, ours, peer in pairs}  # ours / peer
    mem_n = 20_000 if args.quick else args.mem_n
    mem = memory(mem_n, d) if not args.no_memory else []

    md = [f"### Post-hoc transforms, {n}×{d} float32, {args.threads} thread(s), {repeats} interleaved repeats",
          "", markdown_table(["case", "CPU ms median (IQR)"], [[k, fmt_ms(v)] for k, v in stats.items()]), "",
          markdown_table(["comparison", "ours / peer (90% CI)"], [[k, str(v)] for k, v in ratios.items()]), "",
          markdown_table(["whitening", "max abs(Cov(z) − I)", "metric error (rel.)", "mean error (whitened)"],
                         [[k, f"{v['max_abs_cov_minus_I']:.1e}", f"{v['metric_rel_err']:.1e}",
                           f"{v['mean_err_whitened']:.1e}"] for k, v in acc.items()])]
    if mem:
        md += ["", f"Peak RSS growth of one whitening fit_transform at {mem_n}×{d} float32 "
               f"(input {mem[0].get('input_bytes', 0) / 2**30:.2f} GiB, not counted):", "",
               markdown_table(["impl", "peak growth GiB", "output GiB"],
                              [[m["impl"], f"{m['peak_growth_bytes'] / 2**30:.2f}" if "peak_growth_bytes" in m else m.get("error"),
                                f"{m.get('output_bytes', 0) / 2**30:.2f}"] for m in mem])]
    payload = {"n": n, "d": d, "repeats": repeats, "stats": stats, "ratios_ours_over_peer": ratios,
               "accuracy": acc, "memory": mem}
    write_results(NAME, payload, "\n".join(md), args.results_dir, args.threads)
    print("\n".join(md))
    return payload


def main(argv: list[str] | None = None) -> dict | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_memory-child"]:
        _memory_child(argv[1], int(argv[2]), int(argv[3]))
        return None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeats=20, warmup=1, threads=1)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=768)
    parser.add_argument("--mem-n", type=int, default=1_000_000, help="rows of the peak-memory run")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
