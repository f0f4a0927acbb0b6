from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    if os.environ.get("SAFELOG_TORTURE"):
        return
    skip = pytest.mark.skip(reason="torture run: set SAFELOG_TORTURE=1 to run it")
    for item in items:
        if "torture" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the root logger and logger tree as each test found them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    known = set(logging.root.manager.loggerDict)
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    for name in set(logging.root.manager.loggerDict) - known:
        logger = logging.root.manager.loggerDict[name]
        if isinstance(logger, logging.Logger):
            for handler in logger.handlers[:]:
                logger.removeHandler(handler)
                handler.close()
