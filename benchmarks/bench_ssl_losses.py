"""Self-supervised losses: reglab vs lightly and pytorch-metric-learning (forward + backward, CPU).

    python benchmarks/bench_ssl_losses.py [--quick] [--repeats 20] [--threads 1] [--points 256x128 1024x8192]

Two views of n embeddings of dimension d, float32, at every (n, d) in
{256, 1024} × {128, 2048, 8192}. Each case is one forward + backward of the loss
from the same inputs; the cases of one loss at one point are timed together
(process CPU time, interleaved, median and IQR over the repeats: ``_harness.py``).

Losses and peers (the peers' own code, imported, never re-implemented):

* ``barlow_twins``: ``reglab.BarlowTwins`` vs lightly ``BarlowTwinsLoss(lambda_param=0.0051)``;
* ``vicreg``: ``reglab.VICReg`` vs lightly ``VICRegLoss`` and PML ``VICRegLoss`` (25/25/1, ε 1e-4);
* ``vicreg_covariance``: the covariance term of both views alone, ``reglab.functional.covariance_offdiag``
  vs lightly's ``covariance_loss`` and PML's ``VICRegLoss.covariance_loss``;
* ``hypersphere``: alignment + ½(uniformity(z1) + uniformity(z2)) (t = 2, α = 2) from
  ``reglab.functional`` vs lightly ``HypersphereLoss(t=2, lam=1, alpha=2)`` (PML has no
  uniformity loss).

lightly's package ``__init__`` imports torchvision; its loss modules are loaded from
their files (``pip install --no-deps lightly`` is enough). A peer that cannot be
imported is reported as missing, never replaced. Every value is checked against
ours (relative difference ≤ 1e-4 in float32).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    Stats, add_common_args, fmt_ms, markdown_table, measure, ratio, resolve_repeats, write_results,
)

NAME = "ssl_losses"
POINTS = [(n, d) for n in (256, 1024) for d in (128, 2048, 8192)]
QUICK_POINTS = [(64, 32), (64, 256)]
TOLERANCE = 1e-4


# ------------------------------------------------------------------ peers
def _load_lightly() -> dict[str, Callable] | None:
    """lightly's loss modules loaded from their files (its package imports torchvision)."""
    spec = importlib.util.find_spec("lightly")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])

    def load(modname: str, path: Path):
        s = importlib.util.spec_from_file_location(modname, path)
        m = importlib.util.module_from_spec(s)
        sys.modules[modname] = m
        s.loader.exec_module(m)
        return m

    for pkg in ("lightly", "lightly.utils", "lightly.loss"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    try:
        load("lightly.utils.dist", root / "utils" / "dist.py")
        vic = load("lightly.loss.vicreg_loss", root / "loss" / "vicreg_loss.py")
        bt = load("lightly.loss.barlow_twins_loss", root / "loss" / "barlow_twins_loss.py")
        hs = load("lightly.loss.hypersphere_loss", root / "loss" / "hypersphere_loss.py")
    except Exception as exc:  # noqa: BLE001 - any import failure means "lightly missing"
        print(f"# lightly found but its loss modules failed to load: {exc!r}")
        return None
    return {
        "barlow_twins": bt.BarlowTwinsLoss(lambda_param=0.0051),  # the official code's λ
        "vicreg": vic.VICRegLoss(),  # 25/25/1, eps 1e-4
        "vicreg_covariance": lambda z1, z2: vic.covariance_loss(z1) + vic.covariance_loss(z2),
        "hypersphere": hs.HypersphereLoss(t=2.0, lam=1.0, alpha=2.0),
    }


def _load_pml() -> dict[str, Callable] | None:
    try:
        from pytorch_metric_learning.losses import VICRegLoss
    except Exception as exc:  # noqa: BLE001
        print(f"# pytorch-metric-learning unavailable: {exc!r}")
        return None
    loss = VICRegLoss()
    return {
        "vicreg": lambda z1, z2: loss(z1, ref_emb=z2),
        "vicreg_covariance": lambda z1, z2: loss.covariance_loss(z1, z2),
    }


def _ours() -> dict[str, Callable]:
    import reglab
    from reglab import functional as RF

    return {
        "barlow_twins": reglab.create("barlow_twins", gather=False),
        "vicreg": reglab.create("vicreg", gather=False),
        "vicreg_covariance": lambda z1, z2: RF.covariance_offdiag(z1) + RF.covariance_offdiag(z2),
        "hypersphere": lambda z1, z2: RF.alignment(z1, z2)
        + 0.5 * (RF.uniformity(z1, t=2.0, gather=False) + RF.uniformity(z2, t=2.0, gather=False)),
    }


LOSSES = ("barlow_twins", "vicreg_covariance", "hypersphere", "vicreg")
PEERS = ("lightly", "pml")


# ------------------------------------------------------------------ measuring
def _inputs(n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(n, d, generator=g)
    z2 = z1 + 0.5 * torch.randn(n, d, generator=g)
    return z1.requires_grad_(), z2.requires_grad_()


def _step(fn: Callable, z1: torch.Tensor, z2: torch.Tensor) -> Callable[[], float]:
    def run() -> torch.Tensor:
        z1.grad = z2.grad = None
        loss = fn(z1, z2)
        loss.backward()
        return loss

    return run


def run(args: argparse.Namespace) -> dict:
    repeats = resolve_repeats(args)
    points = [tuple(int(v) for v in p.split("x")) for p in args.points] if args.points else (
        QUICK_POINTS if args.quick else POINTS)
    losses = args.losses or LOSSES
    impls = {"reglab": _ours(), "lightly": _load_lightly() or {}, "pml": _load_pml() or {}}
    rows, records = [], []
    for loss in losses:
        for n, d in points:
            z1, z2 = _inputs(n, d)
            fns = {k: v[loss] for k, v in impls.items() if loss in v}
            values = {k: float(_step(fn, z1, z2)().detach()) for k, fn in fns.items()}
            cases = {k: _step(fn, z1, z2) for k, fn in fns.items()}
            stats = measure(cases, repeats=repeats, warmup=args.warmup, threads=args.threads)
            rec = {"loss": loss, "n": n, "d": d, "stats": stats, "values": values, "ratios": {}, "agree": {}}
            for peer in PEERS:
                if peer in stats:
                    rec["ratios"][peer] = ratio(stats[peer], stats["reglab"])  # > 1: reglab faster
                    rel = abs(values[peer] - values["reglab"]) / max(abs(values[peer]), 1e-12)
                    rec["agree"][peer] = {"relative_difference": rel, "ok": rel <= TOLERANCE}
            records.append(rec)
            rows.append(_row(rec))
            print(" | ".join(str(c) for c in rows[-1]), flush=True)
            _write(args, repeats, impls, rows, records, done=False)  # partial results survive an interrupted run
    return _write(args, repeats, impls, rows, records, done=True)


def _row(rec: dict) -> list:
    stats = rec["stats"]
    cells = [rec["loss"], rec["n"], rec["d"], fmt_ms(stats["reglab"])]
    for peer in PEERS:
        cells += [fmt_ms(stats[peer]), str(rec["ratios"][peer])] if peer in stats else ["—", "—"]
    return cells


def merge(args: argparse.Namespace) -> dict:
    """One table from the ``ssl_losses.json`` of several runs (e.g. one process per loss, run side by side)."""
    records, repeats, available = [], None, {"lightly": False, "pml": False}
    for d in args.merge:
        data = json.loads((Path(d) / f"{NAME}.json").read_text(encoding="utf-8"))
        repeats = data["repeats"] if repeats is None else min(repeats, data["repeats"])
        for k, v in data["peers_available"].items():
            available[k] = available[k] or v
        for rec in data["records"]:
            rec["stats"] = {k: Stats(**{f: v[f] for f in ("median", "q25", "q75", "repeats", "number", "samples")})
                            for k, v in rec["stats"].items()}
            rec["ratios"] = {p: ratio(rec["stats"][p], rec["stats"]["reglab"]) for p in PEERS if p in rec["stats"]}
            records = [r for r in records if (r["loss"], r["n"], r["d"]) != (rec["loss"], rec["n"], rec["d"])]
            records.append(rec)  # a later directory's point replaces an earlier one's
    order = {loss: i for i, loss in enumerate(LOSSES)}
    records.sort(key=lambda r: (order.get(r["loss"], 99), r["n"], r["d"]))
    impls = {"lightly": available["lightly"], "pml": available["pml"]}
    have = {(r["loss"], r["n"], r["d"]) for r in records}
    complete = all((loss, n, d) in have for loss in LOSSES for n, d in POINTS)
    return _write(args, repeats, impls, [_row(r) for r in records], records, done=complete)


def _write(args, repeats, impls, rows, records, done: bool) -> dict:
    headers = ["loss", "n", "d", "reglab ms", "lightly ms", "lightly / reglab", "PML ms", "PML / reglab"]
    table = markdown_table(headers, rows, align=["l", "r", "r", "r", "r", "r", "r", "r"])
    mismatches = [(r["loss"], r["n"], r["d"], p) for r in records for p, a in r["agree"].items() if not a["ok"]]
    def points(keep):
        return [(r["loss"], r["n"], r["d"], p, round(x.value, 2)) for r in records for p, x in r["ratios"].items()
                if keep(x)]

    slower = points(lambda x: x.hi < 1.0)  # the whole interval below 1
    parity = points(lambda x: x.lo <= 1.0 <= x.hi)
    verdict = "reglab is faster at every point" if not slower and not parity else "; ".join(
        t for t in (f"slower at {slower}" if slower else "", f"not distinguishable (interval spans 1) at {parity}"
                    if parity else "") if t) + "; faster at every other point"
    md = (
        f"### Self-supervised losses vs lightly / pytorch-metric-learning\n\n"
        f"`python benchmarks/bench_ssl_losses.py`: forward + backward of two (n, d) float32 views, "
        f"CPU, {args.threads} thread(s); process CPU time, median (q25–q75) over {repeats} interleaved "
        f"repeats; ratio = peer / reglab median (> 1: reglab faster) with a 90% bootstrap interval.\n\n"
        f"{table}\n\n"
        f"Values agree with every peer to ≤ {TOLERANCE:g} relative"
        + (f" except {mismatches}" if mismatches else "")
        + f". {verdict[0].upper() + verdict[1:]}."
        + ("" if done else "\n\n*Partial: the run was interrupted; points not listed were not measured.*")
        + "\n"
    )
    payload = {
        "description": "SSL losses, forward+backward, CPU float32; times in seconds per call",
        "repeats": repeats,
        "warmup": args.warmup,
        "peers_available": {"lightly": bool(impls.get("lightly")), "pml": bool(impls.get("pml"))},
        "records": records,
        "mismatches": mismatches,
        "slower_points": slower,
        "indistinguishable_points": parity,
    }
    payload["complete"] = done
    write_results(NAME, payload, md, args.results_dir, args.threads)
    if not done:
        return payload
    print(md)
    if mismatches:
        raise SystemExit(f"values differ from a peer: {mismatches}")
    return payload


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeats=20, warmup=1, threads=1)
    parser.add_argument("--points", nargs="+", default=None, help="NxD points (default: the 6 of the table)")
    parser.add_argument("--losses", nargs="+", choices=LOSSES, default=None)
    parser.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                        help="run nothing: merge the ssl_losses.json of these results dirs into --results-dir "
                        "(a point measured in several: the last directory's)")
    args = parser.parse_args(argv)
    return merge(args) if args.merge else run(args)


if __name__ == "__main__":
    main()
