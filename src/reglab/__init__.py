"""reglab: the regularization library for PyTorch.

* ``reglab.functional`` (``RF``): pure penalties.
* ``reglab.Regularizer`` subclasses: configured modules with paper metadata.
* ``reglab.create`` / ``list_regularizers`` / ``info``: the registry.
* ``reglab.attach``: bind regularizers to a model's parameters/activations.
* ``reglab.schedules``: coefficient schedules.
"""

from reglab import functional, schedules
from reglab._validation import RegularizerInputError
from reglab.bind import Binding, RegularizerSet, attach
from reglab.paper import Claim, Paper
from reglab.registry import (
    UnknownRegularizerError,
    create,
    from_config,
    info,
    list_regularizers,
    register,
)
from reglab.regularizers import *  # noqa: F401,F403
from reglab.regularizers import Penalty, Regularizer, WeightRegularizer
from reglab import embeddings  # noqa: F401  (registers the post-hoc transforms)

__version__ = "0.1.0"
