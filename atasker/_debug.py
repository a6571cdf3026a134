"""``set_debug``: switch debug logging of logger ``atasker`` on or off."""

from __future__ import annotations

import logging

logger = logging.getLogger("atasker")


def set_debug(mode: bool = True) -> None:
    """Log atasker's debug messages (``True``) or stop doing so.

    Only the level of logger ``atasker`` changes; where the records go is
    up to the application's logging configuration.

    Raises:
        TypeError: *mode* is not a bool (``set_debug("no")`` would
            otherwise switch debugging on).
    """
    if not isinstance(mode, (bool, int)) or mode not in (0, 1):
        raise TypeError(f"mode must be True or False, got {mode!r}")
    logger.setLevel(logging.DEBUG if mode else logging.NOTSET)
