"""safelog: logging handlers that stay correct across threads and ``fork()``.

Every handler here is a drop-in replacement for the standard one it names: it
writes the same bytes, and a child forked at any instant, while any number of
threads are logging, can log at once, with nothing written twice or torn.
"""

from __future__ import annotations

from ._atfork import DEFAULT_FORK_TIMEOUT, get_fork_timeout, set_fork_timeout
from ._handlers import FileHandler, StreamHandler
from ._install import InstallReport, install, uninstall
from ._network import DatagramHandler, SocketHandler, SysLogHandler
from ._pending import flush
from ._queue import QueueHandler
from ._rfc5424 import RFC5424Handler
from ._rotating import RotatingFileHandler, TimedRotatingFileHandler
from ._stream import DescriptorStream
from ._watched import WatchedFileHandler

#: The version of the ``forksafe-logging`` distribution this is (PEP 440).
__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_FORK_TIMEOUT",
    "DatagramHandler",
    "DescriptorStream",
    "FileHandler",
    "InstallReport",
    "QueueHandler",
    "RFC5424Handler",
    "RotatingFileHandler",
    "SocketHandler",
    "StreamHandler",
    "SysLogHandler",
    "TimedRotatingFileHandler",
    "WatchedFileHandler",
    "flush",
    "get_fork_timeout",
    "install",
    "set_fork_timeout",
    "uninstall",
]
