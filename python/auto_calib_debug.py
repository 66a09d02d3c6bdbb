"""autocalib_client under the module name of the original tool, so that
`from auto_calib_debug import AutoCalibDebug` works unchanged (docs/remote.md)."""

from autocalib_client import *  # noqa: F401,F403
from autocalib_client import __all__  # noqa: F401
