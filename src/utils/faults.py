"""Named points inside the product's writes where the crash tests kill the process (SIGKILL), so that each test
lands inside the write it means to cut, and can check the half-written state before the rerun. Nothing happens
unless CRYPTO_ML_KILL_AT names the point (a test sets it for the one process it kills)."""
from __future__ import annotations

import os
import signal

KILL_AT = "CRYPTO_ML_KILL_AT"


def kill_point(name: str) -> None:
    """Die here, at once and without clean-up, when CRYPTO_ML_KILL_AT is `name`."""
    if os.environ.get(KILL_AT) == name:
        os.kill(os.getpid(), signal.SIGKILL)
