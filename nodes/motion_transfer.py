"""Transitional: the nodes of ``local_window`` and ``motion_guider`` under this module's old name, until
``nodes/__init__.py`` lists those two modules (then this module goes)."""
from .integration.rope_autograd import ensure_rope_backward  # noqa: F401  (bench.train_tiny still reaches it here)
from .local_window import NODES as _LOCAL_WINDOW_NODES
from .motion_guider import NODES as _MOTION_GUIDER_NODES

NODES = _MOTION_GUIDER_NODES + _LOCAL_WINDOW_NODES
