"""Logging to the host's structured log, tagged there with the component and request."""

from enum import Enum

from . import _host


class Level(Enum):
    """The contract's log levels."""

    DEBUG = 0
    INFO = 1
    WARN = 2
    ERROR = 3


def log(level: Level, message: str) -> None:
    """Logs ``message`` at ``level``."""
    host = _host.get_log()
    host.log(host.Level(level.value), str(message))


def debug(message: str) -> None:
    """Logs at debug level."""
    log(Level.DEBUG, message)


def info(message: str) -> None:
    """Logs at info level."""
    log(Level.INFO, message)


def warn(message: str) -> None:
    """Logs at warn level."""
    log(Level.WARN, message)


def error(message: str) -> None:
    """Logs at error level."""
    log(Level.ERROR, message)
