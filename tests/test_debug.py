"""set_debug and the atasker logger."""

from __future__ import annotations

import logging

from atasker import set_debug


def test_set_debug_switches_the_logger(sup, caplog):
    logger = logging.getLogger("atasker")
    set_debug(True)
    try:
        assert logger.isEnabledFor(logging.DEBUG)
        sup.start()
        assert any(r.levelno == logging.DEBUG and sup.id in r.getMessage()
                   for r in caplog.records)
    finally:
        set_debug(False)
    assert logger.level == logging.NOTSET
