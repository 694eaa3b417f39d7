"""``nn.Module`` regularizers by family; importing this registers them all."""

from reglab.regularizers.base import Penalty, Regularizer, WeightRegularizer  # noqa: F401
from reglab.regularizers.weights import *  # noqa: F401,F403
from reglab.regularizers.representations import *  # noqa: F401,F403
from reglab.regularizers.outputs import *  # noqa: F401,F403
from reglab.regularizers.stochastic import *  # noqa: F401,F403
from reglab.regularizers.procedures import *  # noqa: F401,F403
