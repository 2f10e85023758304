"""Errors a user can act on: the CLI prints their message as one line, never a traceback."""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator


class UserError(Exception):
    """A failure whose message says what was wrong and what to do. Exit code 1."""

    exit_code = 1


class ConfigError(UserError):
    """One or more configuration problems, each on its own line. Exit code 2."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class ModelLoadError(UserError):
    """A registered model that cannot be used: its file missing or altered, or from other code or libraries."""


PUBLIC_CATEGORIES = {  # what a public page says about a failure; the detail stays in the log and /health
    "database": "database unreachable", "exchange": "exchange unreachable", "telegram": "Telegram unreachable",
    "model": "model could not be loaded", "internal": "internal error",
}


def problem_category(exc: BaseException) -> str:
    """The fixed public words for a failure (PUBLIC_CATEGORIES), told from the exception's classes: a page must
    never show an exception's text, which can name a host, an address or a file."""
    for kind in type(exc).__mro__:
        module, name = kind.__module__.split(".")[0], kind.__name__
        if module in ("sqlalchemy", "psycopg2") or name == "DatabaseUnavailable":
            return PUBLIC_CATEGORIES["database"]
        if module == "ccxt" or name == "FetchError":
            return PUBLIC_CATEGORIES["exchange"]
        if module == "telegram":
            return PUBLIC_CATEGORIES["telegram"]
        if kind is ModelLoadError:
            return PUBLIC_CATEGORIES["model"]
    return PUBLIC_CATEGORIES["internal"]


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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_held_depth = [0]  # how many writes that must finish once begun are under way (any thread)
_held_signals: list[int] = []  # stops that arrived meanwhile, delivered when the last such write ends
_held_lock = threading.Lock()


def deferred_while_held(handler: Callable[[int, object], None]) -> Callable[[int, object], None]:
    """Wrap a stop signal's handler so that a stop arriving during `stop_signals_held` waits for its end.
    A signal mask cannot do this: the kernel hands a process signal to any thread that does not block it (an
    OpenMP worker of xgboost), and Python then runs the handler in the main thread all the same."""

    def handle(signum: int, frame: object) -> None:
        if _held_depth[0] > 0:  # no lock here: the handler may interrupt the main thread while it holds the lock
            _held_signals.append(signum)
        else:
            handler(signum, frame)

    return handle


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """Hold SIGTERM, SIGINT and SIGHUP for the few milliseconds of a write that must finish once begun (a model's
    files and its registry row), or the moment of native code that calls back into Python (an xgboost fit): a
    stop arriving meanwhile is delivered right after, not in between. Works with handlers wrapped by
    `deferred_while_held` (the CLI's); the daemon's handlers only set its stop event."""
    with _held_lock:
        _held_depth[0] += 1
    try:
        yield
    finally:
        with _held_lock:
            _held_depth[0] -= 1
            pending = [] if _held_depth[0] else _held_signals[:]
            if pending:
                _held_signals.clear()
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)  # its handler runs in the main thread at its next instruction
