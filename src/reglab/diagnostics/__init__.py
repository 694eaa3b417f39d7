"""Diagnostics on embeddings and models: effective rank, isotropy, sparsity, spectra.

Embeddings (a batch ``z`` of shape (n, d)): :func:`effective_rank`,
:func:`rankme`, :func:`mean_pairwise_cosine`, :func:`partition_isotropy`,
:func:`uniformity`, :func:`alignment`, :func:`singular_values`,
:func:`dead_units`. Models: :func:`weight_sparsity`, :func:`group_sparsity`,
:func:`orthogonality_error`, :func:`layer_weight_norms`, :func:`lipschitz_bound` (a
feed-forward net's Lipschitz bound from Gram iteration). :class:`Monitor`
records any of them during training.
"""

from reglab.diagnostics.embeddings import *  # noqa: F401,F403
from reglab.diagnostics.embeddings import __all__ as _emb_all
from reglab.diagnostics.models import *  # noqa: F401,F403
from reglab.diagnostics.models import __all__ as _mod_all
from reglab.diagnostics.lipschitz import layer_lipschitz_bounds, lipschitz_bound
from reglab.diagnostics.monitor import EMBEDDING_DIAGNOSTICS, MODEL_DIAGNOSTICS, Monitor

__all__ = [*_emb_all, *_mod_all, "lipschitz_bound", "layer_lipschitz_bounds", "Monitor", "EMBEDDING_DIAGNOSTICS", "MODEL_DIAGNOSTICS"]
