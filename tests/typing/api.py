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

queue_handler = safelog.QueueHandler([logfile], maxsize=1000, overflow="drop_old")
dropped: int = queue_handler.dropped
safelog.flush()
rotating = safelog.RotatingFileHandler("app.log", maxBytes=1 << 20, backupCount=3)
timed = safelog.TimedRotatingFileHandler("app.log", when="midnight")
watched = safelog.WatchedFileHandler("app.log", delay=True)
syslog = safelog.SysLogHandler(address=("localhost", 514))
socket_handler = safelog.SocketHandler("localhost", 9020)
datagram = safelog.DatagramHandler("localhost", 9021)
report: safelog.InstallReport = safelog.install(queue=False)
done: bool = safelog.uninstall()
