"""Pure penalties: tensor in, scalar tensor out, differentiable, no state.

``import reglab.functional as RF`` then ``RF.group_lasso(w)``. Each function
is the one the matching ``reglab.Regularizer`` wraps.
"""

from reglab.functional.weights import *  # noqa: F401,F403
from reglab.functional.representations import *  # noqa: F401,F403
from reglab.functional.outputs import *  # noqa: F401,F403
