"""Records of every shape a handler must write exactly as the stdlib does."""

from __future__ import annotations

import logging


def log_mixed(logger: logging.Logger) -> None:
    """Levels, arguments, non-string messages, unicode, exceptions, stacks."""
    logger.debug("debug %d", 1)
    logger.info("plain")
    logger.info("secret %s", "password")
    logger.warning("args %s %d %r", "x", 7, {"k": [1]})
    logger.info({"not": "a string"})
    logger.error("unicode é ✓ %s", "\u2603")
    logger.info("stack", stack_info=True)
    try:
        raise KeyError("inner")
    except KeyError:
        try:
            raise ValueError("outer")
        except ValueError:
            logger.exception("with %s", "traceback")
    logger.info("multi\nline")
    for index in range(40):
        logger.log(logging.DEBUG + 10 * (index % 4), "r%d", index)
