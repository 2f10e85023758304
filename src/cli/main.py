"""python -m src.main [command] [--config PATH]: parse, load the config, run the command, and turn stops
and failures into one clear line and an exit code."""
from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psycopg2
from sqlalchemy.exc import OperationalError

from src.cli.parser import build_parser, check_options
from src.cli.service import cmd_run
from src.scheduler.services import Context
from src.utils.config import Config
from src.utils.errors import UserError, deferred_while_held
from src.utils.logging_setup import SecretFilter, setup_logging
from src.utils.secrets import redact

log = logging.getLogger("src.main")
STOP_GRACE_S = 12.0  # a stop unwinds a command in well under a second; still running after this, it is stuck


class Stopped(BaseException):
    """A stop signal (SIGTERM, SIGHUP) to a CLI command: unwinds to main like Ctrl-C, so every open
    transaction rolls back and the embedded server this process started is stopped at exit."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame) -> None:
    raise Stopped(signum)


def _resend_swallowed_stop(unraisable) -> None:
    """A stop (SIGTERM, SIGHUP, Ctrl-C) whose exception landed in a garbage-collector callback is swallowed by
    Python ("Exception ignored"): send the signal again, so it lands in ordinary code and stops the command.
    Sent from another thread a moment later: sent from here, its handler would raise inside this hook, where
    the exception is swallowed again."""
    exc = unraisable.exc_value
    if isinstance(exc, Stopped | KeyboardInterrupt):
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
    else:
        sys.__unraisablehook__(unraisable)


def install_stop_handlers() -> None:
    """SIGTERM and SIGHUP raise Stopped, Ctrl-C KeyboardInterrupt (each held during a write that must finish),
    and a stop that has not ended the command within STOP_GRACE_S ends the process (`_watch_stops`)."""
    handlers = {signum: deferred_while_held(_raise_stopped) for signum in (signal.SIGTERM, signal.SIGHUP)}
    # Ctrl-C (SIGINT) stops a command even when started from a script in the background, where the shell hands it
    # on ignored and Python would never raise KeyboardInterrupt
    handlers[signal.SIGINT] = deferred_while_held(signal.default_int_handler)
    for signum, handler in handlers.items():  # the daemon installs its own graceful handlers over these
        signal.signal(signum, handler)
    sys.unraisablehook = _resend_swallowed_stop
    _watch_stops(handlers)


def _watch_stops(handlers: dict[int, object]) -> None:
    """Bound a stop: once a stop signal has come while the CLI's own handler is in place, a command still running
    STOP_GRACE_S later has hung in its unwinding or in a C call that never returns to Python (where the handler
    would run). Then each thread's stack goes to stderr (faulthandler: the place to fix) and the process exits
    with 128 + the signal: open transactions die with the connection, a model folder without its row is removed
    at the next start. The signal is seen through the wake-up fd, which the kernel-level handler writes even
    while the main thread is stuck in C."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            signum = os.read(read_fd, 1)[0]
            if signum in handlers and signal.getsignal(signum) is handlers[signum]:
                break
        time.sleep(STOP_GRACE_S)
        print(f"error: the stop ({signal.Signals(signum).name}) did not end the command within {STOP_GRACE_S:.0f} s; "
              "each thread's stack follows", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        os._exit(128 + signum)

    threading.Thread(target=watch, name="stop-watchdog", daemon=True).start()


def _print_error(message: str) -> None:
    for line in redact(message).splitlines():
        print(f"error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    check_options(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    install_stop_handlers()
    try:
        config = Config(args.config)
        if getattr(args, "data_dir", None):  # a folder kept by replay --keep: its embedded database and models
            config.config["database"]["url"] = "embedded"
            config.config["paths"]["data_dir"] = str(Path(args.data_dir).resolve())
        SecretFilter.register(str(config.get("telegram.bot_token", "")))
        setup_logging(config.get("app.log_level"), config.logs_dir)
        for line in config.deprecations:
            log.warning(line)
        handler = cmd_run if args.command is None else args.handler
        return handler(args, Context(config))
    except UserError as exc:
        _print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Stopped as stop:
        print(f"stopped by {stop}", file=sys.stderr)
        return 128 + stop.signum
    except (OperationalError, psycopg2.OperationalError, psycopg2.InterfaceError) as exc:  # the database went away
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _print_error(f"the database stopped answering ({reason}); nothing half-written was kept - start it "
                     "and run the command again")
        return 1
    except Exception as exc:  # an unforeseen fault: the traceback in the log once, one line for the user
        log.error("unexpected failure", exc_info=True)
        _print_error(f"unexpected {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                     "(the traceback is in the log)")
        return 1


if __name__ == "__main__":
    sys.exit(main())
