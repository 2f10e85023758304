"""python -m src.main [command] [--config PATH]: parse, load the config, run the command, and turn stops
and failures into one clear line and an exit code."""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
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


def _print_error(message: str) -> None:
    for line in redact(message).splitlines():
        print(f"error: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    check_options(parser, sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):  # the daemon installs its own graceful handlers
        signal.signal(signum, deferred_while_held(_raise_stopped))
    # Ctrl-C (SIGINT) stops a command even when started from a script in the background, where the shell hands it
    # on ignored and Python would never raise KeyboardInterrupt
    signal.signal(signal.SIGINT, deferred_while_held(signal.default_int_handler))
    sys.unraisablehook = _resend_swallowed_stop
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
