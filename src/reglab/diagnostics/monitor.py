"""``Monitor``: record chosen diagnostics every N steps and plot them.

    mon = Monitor(model, every=50, diagnostics=["effective_rank", "group_sparsity"])
    for step, (x, y) in enumerate(loader):
        z = model.encoder(x)
        ...
        mon.record(step, embeddings=z)
    mon.plot("diagnostics.png")

``record`` returns after one integer test on steps it skips (and at once
when ``every=0`` or ``enabled=False``), so leaving a monitor in a training
loop costs nothing when it is off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from reglab.diagnostics import embeddings as _emb
from reglab.diagnostics import models as _mod

__all__ = ["Monitor", "EMBEDDING_DIAGNOSTICS", "MODEL_DIAGNOSTICS"]

EMBEDDING_DIAGNOSTICS: dict[str, Callable[[torch.Tensor], float]] = {
    "effective_rank": _emb.effective_rank,
    "rankme": _emb.rankme,
    "mean_pairwise_cosine": _emb.mean_pairwise_cosine,
    "partition_isotropy": _emb.partition_isotropy,
    "uniformity": _emb.uniformity,
    "dead_units": _emb.dead_units,
    "matrix_nuclear_norm": _emb.matrix_nuclear_norm,
}
MODEL_DIAGNOSTICS: dict[str, Callable[[nn.Module], Any]] = {
    "weight_sparsity": _mod.weight_sparsity,
    "group_sparsity": _mod.group_sparsity,
    "orthogonality_error": _mod.orthogonality_error,
    "layer_weight_norms": _mod.layer_weight_norms,
}


class Monitor:
    """Record diagnostics every ``every`` steps into ``history``.

    ``diagnostics`` holds names from ``EMBEDDING_DIAGNOSTICS`` (computed on
    the ``embeddings`` passed to ``record``) or ``MODEL_DIAGNOSTICS``
    (computed on ``model``), or ``(name, fn)`` pairs with
    ``fn(model=..., embeddings=...)`` returning a float or a dict of floats.
    Dict-valued diagnostics are stored per key as ``"name/key"``.
    ``history[name]`` is a list of ``(step, value)``.
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        every: int = 100,
        diagnostics: Sequence[str | tuple[str, Callable[..., Any]]] = ("effective_rank",),
        enabled: bool = True,
    ):
        if not isinstance(every, int) or isinstance(every, bool) or every < 0:
            raise ValueError(f"Monitor.every must be a non-negative int (0 = off), got {every!r}")
        self.model = model
        self.every = every
        self.enabled = enabled and every > 0
        self._fns: list[tuple[str, Callable[..., Any]]] = []
        for d in diagnostics:
            if isinstance(d, tuple):
                name, fn = d
                self._fns.append((name, fn))
            elif d in EMBEDDING_DIAGNOSTICS:
                fn_e = EMBEDDING_DIAGNOSTICS[d]
                self._fns.append((d, lambda model, embeddings, fn_e=fn_e, d=d: fn_e(_need(d, embeddings))))
            elif d in MODEL_DIAGNOSTICS:
                if model is None:
                    raise ValueError(f"Monitor diagnostic {d!r} needs a model: Monitor(model, ...)")
                fn_m = MODEL_DIAGNOSTICS[d]
                self._fns.append((d, lambda model, embeddings, fn_m=fn_m: fn_m(model)))
            else:
                import difflib

                known = list(EMBEDDING_DIAGNOSTICS) + list(MODEL_DIAGNOSTICS)
                close = difflib.get_close_matches(str(d), known, n=3)
                hint = f"; did you mean {close}?" if close else f"; known: {known}"
                raise ValueError(f"unknown diagnostic {d!r}{hint}")
        self.history: dict[str, list[tuple[int, float]]] = {}

    def due(self, step: int) -> bool:
        return self.enabled and step % self.every == 0

    def record(self, step: int, embeddings: torch.Tensor | None = None) -> dict[str, float] | None:
        """Compute and store the diagnostics if ``step`` is due; return them (else None)."""
        if not self.enabled or step % self.every:
            return None
        out: dict[str, float] = {}
        with torch.no_grad():
            for name, fn in self._fns:
                value = fn(model=self.model, embeddings=embeddings)
                if isinstance(value, dict):
                    out.update({f"{name}/{k}": float(v) for k, v in value.items()})
                else:
                    out[name] = float(value)
        for k, v in out.items():
            self.history.setdefault(k, []).append((int(step), v))
        return out

    def plot(self, path: str) -> str:
        """One panel per recorded series, saved as an image at ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        names = sorted(self.history)
        if not names:
            raise ValueError("Monitor.plot: nothing recorded yet")
        cols = min(3, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names):
            steps, values = zip(*self.history[name])
            ax.plot(steps, values, marker=".")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("step")
        for ax in list(axes.flat)[len(names):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _need(name: str, embeddings: torch.Tensor | None) -> torch.Tensor:
    if embeddings is None:
        raise ValueError(f"Monitor diagnostic {name!r} needs record(step, embeddings=...)")
    return embeddings
