"""``set_debug``: switch debug logging of logger ``atasker`` on or off."""

from __future__ import annotations

import logging

logger = logging.getLogger("atasker")


def set_debug(mode: bool = True) -> None:
    """Log atasker's debug messages (``True``) or stop doing so.

    Only the level of logger ``atasker`` changes; where the records go is
    up to the application's logging configuration.
    """
    logger.setLevel(logging.DEBUG if mode else logging.NOTSET)
