"""Where independent work units run (config `ml.executor`):

- `local`: processes on this machine (joblib's loky), `ml.n_workers` of them (0: one per core), each
  fit single-threaded so the workers never oversubscribe the cores. One worker runs the units in this
  process (the serial path; the tests' default).
- `dask://HOST:PORT`: an existing Dask distributed cluster (`dask scheduler`, `dask worker`).

A unit is a tuple (function, *arguments), all picklable, whose result is gathered by the caller, which alone
writes to the database: a unit never touches it, so a unit run twice (a worker died, the scheduler
retried it) writes nothing twice. Large inputs are passed by reference (`share`): a file each local
worker loads once, or data scattered to the Dask cluster once; a worker never reads the database.
Results come back in the order of the units, whatever order they ran in. A unit that raises comes back
as a `UnitFailure` (the others go on); a local worker that dies has its units run again."""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import tempfile
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import joblib
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import TerminatedWorkerError
from threadpoolctl import threadpool_limits

from src.utils.config import DASK_PREFIX, DASK_TLS_PREFIX, LOCAL, check_executor_spec
from src.utils.errors import UserError, check_stop

log = logging.getLogger(__name__)
RETRIES = 2  # times a unit whose worker died is run again
WAIT_STEP_S = 0.2  # how often a wait for a unit looks at the stop event
IDLE_WORKER_S = 300  # worker processes idle this long end (loky starts them again when needed)
# one BLAS/OpenMP thread in each worker from its start (the units also limit their pools: _guarded)
ONE_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                         "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")}


class UnitFailure:
    """What a unit raised, carried back to the caller instead of stopping the others."""

    def __init__(self, error: BaseException):
        self.error = error
        self.traceback = "".join(traceback.format_exception(error))

    def __repr__(self) -> str:
        return f"UnitFailure({self.error!r})"


def _guarded(fn: Callable, *args):
    try:
        # one BLAS/OpenMP thread per unit wherever it runs: the cores belong to the units side by side, and a
        # fit gives the same numbers in this process as in a worker (a second BLAS thread changes the order
        # of a sum, and so the last bits of a fitted coefficient)
        with threadpool_limits(limits=1):
            return fn(*args)
    except Exception as exc:  # one failing unit must not stop the others
        return UnitFailure(exc)


def _result_unless_stopped(future, stop: threading.Event | None):
    """A unit's result (a concurrent or a Dask future), or StopRequested once `stop` is set while it runs.
    Waited for through a done-callback, and read only once done: Dask's result(timeout=...) goes through asyncio's
    wait_for, which on Python 3.11 can end in CancelledError as the timeout fires, and distributed's sync() then
    fails with "UnboundLocalError: ... 'result'" (seen in CI, one poll in thousands)."""
    finished = threading.Event()
    future.add_done_callback(lambda _: finished.set())
    while True:
        check_stop(stop, "the fits")
        if finished.wait(WAIT_STEP_S):
            return future.result()


def _kill_workers(pool) -> None:
    """SIGKILL loky's worker processes. Loky takes it as workers that died: the executor is marked broken, its
    pending futures fail, the next map starts new workers. (Its shutdown(kill_workers=True) races with its own
    manager thread over units not yet dispatched: a KeyError there, and a process that cannot exit.)"""
    for pid in list(getattr(pool, "_processes", {})):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pool.shutdown(wait=True)  # returns once loky has seen them die: the next map does not submit to them


class Stored:
    """A handle to an object written once to a file; each worker process loads it once."""

    def __init__(self, path: str):
        self.path = path


@functools.lru_cache(maxsize=16)  # bounded: units come grouped, so a worker needs few objects at a time
def _load(path: str):
    return joblib.load(path)


def resolve(ref):
    """The object behind a `share` handle (Dask resolves its own references before calling a unit)."""
    return _load(ref.path) if isinstance(ref, Stored) else ref


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """Processes on this machine; with one worker, this process itself."""

    def __init__(self, n_workers: int = 1):
        self.n_workers = max(1, n_workers)
        self.name = "serial" if self.n_workers == 1 else f"local ({self.n_workers} processes)"
        self.dashboard: str | None = None
        self._folder: Path | None = None

    def share(self, obj):
        if self.n_workers == 1:
            return obj
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="crypto-ml-shared-"))
        path = self._folder / f"{uuid.uuid4().hex}.joblib"
        joblib.dump(obj, path)
        return Stored(str(path))

    def release(self, ref) -> None:
        """Done with a shared object: its file goes."""
        if isinstance(ref, Stored):
            Path(ref.path).unlink(missing_ok=True)

    def map(self, units: Sequence[tuple], progress: Callable[[int], None] | None = None,
            stop: threading.Event | None = None) -> Iterator:
        """fn(*args) for every unit (fn, *args), results in the units' order. With `stop` set while a unit runs
        in a worker, StopRequested comes within WAIT_STEP_S and the workers are killed: a unit writes nothing,
        so its result is simply not wanted (one worker runs units here, where a stop waits for the unit)."""
        if self.n_workers == 1:
            for unit in units:
                yield _guarded(*unit)
                if progress:
                    progress(1)
            return
        done, attempts = 0, 0
        while done < len(units):
            try:
                for result in self._in_workers(units[done:], stop):
                    done += 1
                    yield result
                    if progress:
                        progress(1)
            except TerminatedWorkerError as exc:
                attempts += 1
                if attempts > RETRIES:
                    raise
                log.warning("a worker process died (%s); running the %d unfinished units again",
                            str(exc).splitlines()[0], len(units) - done)

    def _in_workers(self, units: Sequence[tuple], stop: threading.Event | None) -> Iterator:
        """The units on loky's reusable worker processes, results in order. Left early (a stop, the caller done
        with them, a worker that died), the workers are killed and the units not yet run dropped."""
        pool = get_reusable_executor(max_workers=self.n_workers, timeout=IDLE_WORKER_S, env=ONE_THREAD_ENV)
        futures = [pool.submit(_guarded, *unit) for unit in units]
        finished = False
        try:
            for future in futures:
                yield _result_unless_stopped(future, stop)
            finished = True
        finally:
            if not finished and not all(future.done() for future in futures):
                _kill_workers(pool)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


class DaskExecutor:
    """An existing Dask distributed cluster."""

    def __init__(self, address: str):
        from distributed import Client
        self.address = address
        try:
            self.client = Client(address, timeout="20s", set_as_default=False)
        except OSError as exc:
            raise UserError(f"ml.executor: no Dask scheduler answers at {address} ({exc}); start one with "
                            "`dask scheduler` and workers with `dask worker HOST:8786 --nthreads 1` (README), "
                            "or set ml.executor: local") from exc
        self.n_workers = len(self.client.scheduler_info(n_workers=-1)["workers"])
        self.name = f"dask {address} ({self.n_workers} workers)"
        self.dashboard = self.client.dashboard_link

    def share(self, obj):
        """Scattered once, on two workers: data scattered has no task to recompute it from, so one worker
        dying must not lose it."""
        [future] = self.client.scatter([obj], hash=False)  # one object (a dict alone would go key by key)
        if self.n_workers > 1:
            self.client.replicate([future], n=2)
        return future

    def release(self, ref) -> None:
        """Done with a shared object: the cluster may forget it."""
        ref.release()

    def map(self, units: Sequence[tuple], progress: Callable[[int], None] | None = None,
            stop: threading.Event | None = None) -> Iterator:
        """fn(*args) for every unit (fn, *args) on the cluster, results in the units' order. A unit whose worker dies is
        run again by the scheduler (distributed.scheduler.allowed-failures times). With `stop` set, StopRequested
        comes within WAIT_STEP_S and the cluster drops the units not finished."""
        futures = [self.client.submit(_guarded, *unit, pure=False) for unit in units]
        if progress:  # counted as units finish, in any order
            for future in futures:
                future.add_done_callback(lambda _: progress(1))
        try:
            for future in futures:
                yield _result_unless_stopped(future, stop)
                future.release()
        finally:
            unfinished = [future for future in futures if not future.done()]
            if unfinished:  # a stop, or the caller done early
                self.client.cancel(unfinished)

    def close(self) -> None:
        self.client.close()


Executor = LocalExecutor | DaskExecutor


def batches(executor: Executor, keys: list) -> Iterator[list]:
    """The keys in batches of a few groups per worker: a caller plans (and holds the data of) one batch at
    a time, so memory does not grow with the number of groups."""
    size = max(4, 4 * executor.n_workers)
    for first in range(0, len(keys), size):
        yield keys[first:first + size]


def map_groups(executor: Executor, groups: dict, progress: Callable[[int], None] | None = None,
               stop: threading.Event | None = None) -> Iterator[tuple]:
    """Run every group's units (a dict: key -> list of units) and yield (key, its results) as each group
    completes, groups in the dict's order, so a caller can write one group while the next runs. With `stop` (a
    threading.Event), StopRequested is raised once it is set (a unit running in a worker is abandoned, one running
    in this process ends first): nothing of the group is written."""
    results = executor.map([unit for units in groups.values() for unit in units], progress, stop)
    for key, units in groups.items():
        outputs = []
        for _ in units:
            outputs.append(next(results))
            check_stop(stop, "the fits")
        yield key, outputs


def make_executor(spec: str = LOCAL, n_workers: int = 0) -> Executor:
    """`local` with n_workers processes (0: one per core), or the Dask cluster at dask://HOST:PORT (over TLS:
    dask+tls://HOST:PORT)."""
    problem = check_executor_spec(spec)
    if problem:
        raise UserError(f"ml.executor {spec!r} {problem}")
    if spec == LOCAL:
        return LocalExecutor(n_workers or available_cores())
    if spec.startswith(DASK_TLS_PREFIX):  # certificates: Dask's config (distributed.comm.tls.*, README "Scale")
        executor = DaskExecutor("tls://" + spec[len(DASK_TLS_PREFIX):])
    else:
        executor = DaskExecutor("tcp://" + spec[len(DASK_PREFIX):])
    log.info("executor: %s, dashboard %s", executor.name, executor.dashboard)
    return executor
