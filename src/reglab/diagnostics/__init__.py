"""Diagnostics on embeddings and models: effective rank, isotropy, sparsity, spectra.

Embeddings (a batch ``z`` of shape (n, d)): ``effective_rank``,
``rankme``, ``mean_pairwise_cosine``, ``partition_isotropy``,
``uniformity``, ``alignment``, ``singular_values``,
``dead_units``, ``matrix_nuclear_norm``. Models: ``weight_sparsity``, ``group_sparsity``,
``orthogonality_error``, ``layer_weight_norms``, ``lipschitz_bound`` (a
feed-forward net's Lipschitz bound from Gram iteration). ``Monitor``
records any of them during training.
"""

from reglab.diagnostics.embeddings import *  # noqa: F401,F403
from reglab.diagnostics.embeddings import __all__ as _emb_all
from reglab.diagnostics.models import *  # noqa: F401,F403
from reglab.diagnostics.models import __all__ as _mod_all
from reglab.diagnostics.lipschitz import layer_lipschitz_bounds, lipschitz_bound
from reglab.diagnostics.monitor import EMBEDDING_DIAGNOSTICS, MODEL_DIAGNOSTICS, Monitor

__all__ = [*_emb_all, *_mod_all, "lipschitz_bound", "layer_lipschitz_bounds", "Monitor", "EMBEDDING_DIAGNOSTICS", "MODEL_DIAGNOSTICS"]
