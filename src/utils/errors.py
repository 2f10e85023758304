"""Errors a user can act on: the CLI prints their message as one line, never a traceback."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class UserError(Exception):
    """A failure whose message says what was wrong and what to do. Exit code 1."""

    exit_code = 1


class ConfigError(UserError):
    """One or more configuration problems, each on its own line. Exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class StopRequested(BaseException):
    """The service is stopping: raised at a safe point (between work units, groups, retries). Not a failure, and
    a BaseException so that the handlers that keep one group's failure from stopping the others let it pass."""


def check_stop(stop: threading.Event | None, what: str) -> None:
    """Raise StopRequested when `stop` is set."""
    if stop is not None and stop.is_set():
        raise StopRequested(f"{what} stopped at a safe point: the service is stopping")


def failure_reason(exc: BaseException) -> str:
    """One line for a failure of one group: a UserError's own message, else the error's type and message."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP for the few milliseconds of a write that must finish once begun (a model's
    files and its registry row): a stop arriving meanwhile is delivered right after, not in between."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
