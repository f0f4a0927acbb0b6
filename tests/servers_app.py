"""The WSGI app that tests/test_servers.py serves with gunicorn and uWSGI.

Imported once in the server's master (gunicorn ``--preload``, uWSGI without
``lazy-apps``), where it starts ``SERVERS_THREADS`` threads that log through
the ``app`` logger without pause, so that every worker is forked while a
thread may be inside a handler.  Each request logs one line naming its id.

Set by the test, in the environment:

``SERVERS_MODE``
    ``install`` or ``install-queue``: call ``safelog.install()`` (with
    ``queue=True``) here, after the server configured logging.
    ``file:PATH``: add a handler for PATH to the ``app`` logger here, of the
    class ``SERVERS_HANDLER`` names (uWSGI has no logging configuration).
    Anything else: the server's own configuration made the handler.
``SERVERS_THREADS``
    How many logging threads to start (default 3).
``SERVERS_LOGGER``
    The logger the threads and requests log through (default ``app``).

Lines written, and nothing else (the handler's format is ``%(message)s``):
``tick <thread> <sequence> <padding>`` from the threads, ``request <id>
<pid>`` from a request.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

#: Long enough that a torn line shows; the same on every tick line.
PADDING = "x" * 60

logger = logging.getLogger(os.environ.get("SERVERS_LOGGER", "app"))


def _configure() -> None:
    mode = os.environ.get("SERVERS_MODE", "")
    if mode.startswith("file:"):
        module_name, _, class_name = os.environ["SERVERS_HANDLER"].rpartition(".")
        handler_class = getattr(importlib.import_module(module_name), class_name)
        handler = handler_class(mode[len("file:") :])
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    elif mode in ("install", "install-queue"):
        import safelog

        safelog.install(queue=mode == "install-queue")


def _tick(thread: int) -> None:
    sequence = 0
    while True:
        logger.info("tick %d %d %s", thread, sequence, PADDING)
        sequence += 1


def _start_threads() -> None:
    for thread in range(int(os.environ.get("SERVERS_THREADS", "3"))):
        threading.Thread(target=_tick, args=(thread,), daemon=True).start()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Log ``request <id> <pid>`` for ``?id=<id>`` and answer ``ok``."""
    request_id = parse_qs(environ.get("QUERY_STRING", "")).get("id", ["-"])[0]
    if request_id != "-":
        logger.info("request %s %d", request_id, os.getpid())
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [body]


# uWSGI names its callable "application" by default.
application = app

_configure()
_start_threads()
