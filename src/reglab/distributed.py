"""The one place reglab talks to ``torch.distributed``; the implementation is ``reglab.core.distributed``."""

from reglab.core.distributed import *  # noqa: F401,F403
from reglab.core.distributed import __all__  # noqa: F401
