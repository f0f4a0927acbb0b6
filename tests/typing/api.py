"""The public API, as a user writes it; checked by ``mypy --strict``."""

from __future__ import annotations

import logging
import sys

import safelog

console = safelog.StreamHandler(sys.stderr)
logfile = safelog.FileHandler("app.log", mode="a", encoding="utf-8", delay=True)
logfile.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
base_name: str = logfile.baseFilename
safelog.set_fork_timeout(0.05)
timeout: float = safelog.get_fork_timeout()
handlers: list[logging.Handler] = [console, logfile]
