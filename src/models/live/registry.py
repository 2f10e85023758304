"""Model registry: model files under <models folder>/<version>/ plus a metadata row per model (model_registry).

Each model is saved with joblib (the calibrated scikit-learn estimator); xgboost's boosters are also
written in xgboost's own format (booster-k.ubj), readable by any xgboost.

Nothing is lost and nothing is trusted blindly: a model's files are written into a temporary folder inside
the models folder, synced to disk and renamed into place before its row is inserted, so a crash leaves either
a whole model with its row or a folder no row names (removed at the next start). A row is trusted only for
what it is: the folder is the models folder / the row's version (checked against the version's pattern, never
a path from the row), the file is read once and its bytes are both hashed and loaded, and a model whose feature
version, or xgboost or scikit-learn major.minor, differs from the running code is refused with the reason.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import logging
import os
import platform
import re
import shutil
import sys
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import pandas as pd
import psutil
import sklearn
import xgboost

from src.data.features import FEATURE_VERSION
from src.database.records import RecordStore
from src.utils.config import registry_name
from src.utils.errors import ModelLoadError, stop_signals_held
from src.utils.faults import kill_point

# Model files written before the models were grouped by role name their classes by these modules (pickle
# stores a class by module and name); they load from the modules the classes live in now.
LEGACY_MODULES = {"src.models.resolution": "src.models.estimators.time_models"}


def _alias_legacy_modules() -> None:
    for old, new in LEGACY_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)


@dataclass
class LoadedModel:
    version: str
    model_name: str
    estimator: object
    meta: dict


log = logging.getLogger(__name__)
# <symbol>-<target>-[time-]<model>-<train end, YYYYMMDDHH>-<6 hex>: no path separator can pass
VERSION = re.compile(r"[A-Za-z0-9_.]{1,40}-[0-9.e+-]{1,16}-(?:time-)?[a-z_]{1,40}-[0-9]{10}-[0-9a-f]{6}")
WRITING = ".writing-"  # a model folder being written: .writing-<pid>-<process start, 1/100 s>-<version>
ORPHAN_AFTER_S = 60  # a whole folder no row names is an orphan once this old (its row follows in milliseconds)
CHECKED_LIBRARIES = {"xgboost": xgboost.__version__, "scikit-learn": sklearn.__version__}


def _major_minor(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def _fsync(path: Path) -> None:
    """Push a file's (or a folder's entries') data to the disk, so a power cut cannot undo a rename."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ModelRegistry:
    """`cache_size`: loaded models kept in memory (least recently used dropped first). Size it to hold the
    models one cycle uses, twice over (the day's fresh fits beside the ones they replace): a daily refit
    makes new versions every day, and an unbounded cache would grow with each."""

    def __init__(self, records: RecordStore, models_dir: Path, cache_size: int = 64, horizon: int | None = None,
                 keep_retired: int = 7):
        """`keep_retired`: per group, the retired champions whose files (and rows) are kept
        (retention.retired_champions)."""
        self.records = records
        self.keep_retired = keep_retired
        self.horizon = horizon  # ml.horizon_hours: a model that learned labels over another horizon is refused
        self.models_dir = models_dir
        self.cache_size = cache_size
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._current_all: tuple[tuple, dict] | None = None  # (registry state, current_all's answer)

    def save(self, estimator, *, symbol: str, timeframe: str, target: float, model_name: str,
             train_start: datetime, train_end: datetime, n_samples: int, metrics: dict,
             task: str = "direction") -> str:
        """Write the model's files and its metadata row; returns its version. `task`: 'direction' (P(UP))
        or 'resolution' (how soon; its versions say 'time')."""
        kind = model_name if task == "direction" else f"time-{model_name}"
        version = f"{registry_name(symbol)}-{target:g}-{kind}-{train_end:%Y%m%d%H}-{uuid.uuid4().hex[:6]}"
        libraries = {"python": platform.python_version(), "xgboost": xgboost.__version__,
                     "scikit-learn": sklearn.__version__, "pandas": pd.__version__}
        buffer = io.BytesIO()
        joblib.dump(estimator, buffer)
        row = {"symbol": symbol, "timeframe": timeframe, "target_pct": target, "model_name": model_name, "task": task,
               "version": version, "feature_version": FEATURE_VERSION, "path": version,
               "checksum": hashlib.sha256(buffer.getvalue()).hexdigest(), "train_start": train_start,
               "train_end": train_end, "n_samples": n_samples, "metrics": metrics, "library_versions": libraries}
        with stop_signals_held():  # a stop waits the milliseconds until files and row are both written
            self._write_folder(version, buffer.getvalue(), estimator if model_name == "xgboost" and
                               task == "direction" else None, row)
            # no clean-up when the insert fails: a row must never lose its files; a folder whose row was not
            # written (a crash, the database gone) is removed by remove_orphans at the next start
            kill_point("model-files-without-row")
            self.records.add_model(row)
        return version

    def _write_folder(self, version: str, model: bytes, xgboost_model, row: dict) -> Path:
        """Write a model's files into a temporary folder, sync them, and rename it into place."""
        self.models_dir.mkdir(parents=True, exist_ok=True)
        writing = self.models_dir / f"{WRITING}{os.getpid()}-{_started(os.getpid())}-{version}"
        folder = self.model_folder(version)
        writing.mkdir()
        try:
            (writing / "model.joblib").write_bytes(model)
            kill_point("model-files-half-written")
            if xgboost_model is not None:  # the boosters in xgboost's own format, readable without our code
                for k, calibrated in enumerate(xgboost_model.calibrated_classifiers_):
                    calibrated.estimator.get_booster().save_model(str(writing / f"booster-{k}.ubj"))
            (writing / "meta.json").write_text(json.dumps(row, default=str, indent=2))
            for path in writing.iterdir():
                _fsync(path)
            _fsync(writing)
            os.rename(writing, folder)
            _fsync(self.models_dir)
        except BaseException:
            shutil.rmtree(writing, ignore_errors=True)
            raise
        return folder

    def model_folder(self, version: str) -> Path:
        """models folder / version, for a version of the registry's own form only: a row can name no other
        file (a path in a row, or '..' in a version, is never followed)."""
        if not isinstance(version, str) or not VERSION.fullmatch(version):
            raise ModelLoadError(f"model version {str(version)[:80]!r} is not one this registry writes; refused "
                                 f"(retrain "
                            "with: python -m src.main train)")
        return self.models_dir / version

    def remove_orphans(self) -> int:
        """Delete model folders that no registry row names: a fit killed before its row was written, or while
        its files were being written (by a process no longer running). Only folders of the registry's own
        naming inside the models folder are touched. Returns how many were removed."""
        if not self.models_dir.is_dir():
            return 0
        named, removed = self.records.model_versions(), 0
        for entry in self.models_dir.iterdir():
            if entry.is_dir() and not entry.is_symlink() and self._is_orphan(entry, named):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        if removed:
            log.info("removed %d model folders that no registry row names (fits stopped before they finished)",
                     removed)
        return removed

    @staticmethod
    def _is_orphan(entry: Path, named: set[str]) -> bool:
        if entry.name.startswith(WRITING):
            pid, _, rest = entry.name.removeprefix(WRITING).partition("-")
            started, _, version = rest.partition("-")
            if not started.isdigit():  # written before the start time was named: .writing-<pid>-<version>
                started, version = "", rest
            return bool(VERSION.fullmatch(version)) and pid.isdigit() and not _alive(int(pid), started)
        return (bool(VERSION.fullmatch(entry.name)) and entry.name not in named
                and time.time() - entry.stat().st_mtime > ORPHAN_AFTER_S)

    def load(self, row: pd.Series | dict) -> LoadedModel:
        """Load a registry row's model: from models folder / version, the file read once, its bytes checked
        against the row's checksum and loaded; refused (UserError, with the reason) when anything differs."""
        version = row["version"]
        with self._cache_lock:  # the jobs thread, the page threads and the bot share this cache
            if version in self._cache:
                self._cache.move_to_end(version)
                return self._cache[version]
        folder = self.model_folder(version)
        if row["feature_version"] != FEATURE_VERSION:
            raise ModelLoadError(f"model {version} was trained on features {row['feature_version']}, this code "
                                 f"computes "
                            f"{FEATURE_VERSION}; retrain with: python -m src.main train")
        self._check_libraries(version, row.get("library_versions") or {})
        learned = (row.get("metrics") or {}).get("horizon_hours")
        if self.horizon is not None and learned is not None and int(learned) != self.horizon:
            raise ModelLoadError(f"model {version} learned labels over {learned} h, ml.horizon_hours is "
                                 f"{self.horizon}; "
                            "retrain with: python -m src.main train")
        try:
            data = (folder / "model.joblib").read_bytes()
        except OSError:
            raise ModelLoadError(f"model file of {version} is missing; retrain with: python -m src.main "
                                 "train") from None
        if hashlib.sha256(data).hexdigest() != row["checksum"]:
            raise ModelLoadError(f"model file of {version} does not match its checksum (altered); refused, "
                                 "retrain with: "
                            "python -m src.main train")
        _alias_legacy_modules()
        loaded = LoadedModel(version, row["model_name"], joblib.load(io.BytesIO(data)), dict(row))
        with self._cache_lock:  # two threads loading one version at once: the first one's copy is kept
            loaded = self._cache.setdefault(version, loaded)
            self._cache.move_to_end(version)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return loaded

    @staticmethod
    def _check_libraries(version: str, recorded: dict) -> None:
        """A pickle from another xgboost or scikit-learn major.minor may load wrong or not at all: refuse it."""
        for name, running in CHECKED_LIBRARIES.items():
            if name in recorded and _major_minor(recorded[name]) != _major_minor(running):
                raise ModelLoadError(f"model {version} was saved with {name} {recorded[name]}, this is {running}; "
                                "retrain with: python -m src.main train")

    def prune(self, symbol: str, timeframe: str, target: float, keep: int = 3, keep_retired_files: int | None = None,
              task: str = "direction") -> int:
        """Delete the files and rows of models that were never champion, beyond the newest `keep` of each
        kind. Retired champions keep their rows (the champion history) until the retention removes them, but
        only the newest `keep_retired_files` (default: keep_retired) keep their files: a fresh champion is
        deployed every day. Returns rows removed."""
        keep_retired_files = self.keep_retired if keep_retired_files is None else keep_retired_files
        rows = self.records.models(symbol, timeframe, target, task=task)
        never = rows[~rows["is_champion"] & rows["promoted_at"].isna()]
        doomed = never.groupby("model_name", group_keys=False).apply(lambda g: g.iloc[:-keep] if keep else g)
        retired = rows[~rows["is_champion"] & rows["promoted_at"].notna()]
        old_files = retired["version"].iloc[:-keep_retired_files] if keep_retired_files else retired["version"]
        for version in [*doomed["version"], *old_files]:
            shutil.rmtree(self.model_folder(version), ignore_errors=True)
        with self._cache_lock:
            for version in [*doomed["version"], *retired["version"].iloc[:len(old_files)]]:
                self._cache.pop(version, None)
        self.records.delete_models(list(doomed["version"]))
        return len(doomed)

    def remove_retired(self, keep: int | None = None) -> int:
        """Rows (and any files left) of retired champions beyond the newest `keep` (default: keep_retired) of each
        group: past their files' lifetime, they serve nothing. Returns the rows removed."""
        versions = self.records.retired_beyond(self.keep_retired if keep is None else keep)
        for version in versions:
            shutil.rmtree(self.model_folder(version), ignore_errors=True)
        with self._cache_lock:
            for version in versions:
                self._cache.pop(version, None)
        self.records.delete_models(versions)
        return len(versions)

    def current_all(self, timeframe: str) -> dict[tuple[str, float, str], dict[str, pd.Series]]:
        """`current` of every asset x target x task at once, keyed (symbol, target rounded to 6, task): read again only
        when the registry has changed since (registry_state), as it does once a day."""
        state = (timeframe, self.records.registry_state(timeframe))
        with self._cache_lock:
            if self._current_all is not None and self._current_all[0] == state:
                return self._current_all[1]
        rows = self.records.current_models(timeframe)
        keys = [rows["symbol"], rows["target_pct"].round(6), rows["task"]]
        current = {} if rows.empty else {key: self._latest(group) for key, group in rows.groupby(keys, sort=False)}
        with self._cache_lock:
            self._current_all = (state, current)
        return current

    @staticmethod
    def _latest(rows: pd.DataFrame) -> dict[str, pd.Series]:
        """current_models rows of one group as {model name: newest row, 'champion': the champion row}; the
        champion's name maps to the champion itself (it predicts)."""
        models: dict[str, pd.Series] = {}
        for _, row in rows.iterrows():
            if row["is_champion"]:
                models["champion"] = row
            models.setdefault(row["model_name"], row)
        if "champion" in models:
            models[models["champion"]["model_name"]] = models["champion"]
        return models

    def current(self, symbol: str, timeframe: str, target: float, as_of: pd.Timestamp | None = None,
                task: str = "direction") -> dict[str, pd.Series]:
        """The newest model of each name for one asset x target, and which is champion (key 'champion').
        With `as_of`, the registry as it stood then: models created by that time, and the champion that was
        serving at it (none if no champion had been promoted yet)."""
        if as_of is None:  # the current rows only, through the index: not the group's whole history
            return self._latest(self.records.current_models(timeframe, symbol, target, task))
        rows = self.records.models(symbol, timeframe, target, task=task)
        rows = rows[rows["created_at"] <= as_of]
        champions = rows[(rows["promoted_at"] <= as_of) & (rows["retired_at"].isna() | (rows["retired_at"] > as_of))]
        latest = {name: group.iloc[-1] for name, group in rows.groupby("model_name")}
        if len(champions):
            champion = champions.iloc[-1]
            latest[champion["model_name"]] = champion  # predict with the champion itself
            latest["champion"] = champion
        return latest


def _started(pid: int) -> int:
    """When process `pid` started, in 1/100 s since the epoch (psutil's resolution): with the PID, it names one
    process, where the PID alone does not (a container's daemon is PID 1 at every start)."""
    return int(round(psutil.Process(pid).create_time() * 100))


def _alive(pid: int, started: str = "") -> bool:
    """Whether the process that wrote a folder still runs: its PID exists and, when named, started then."""
    try:
        return _started(pid) == int(started) if started else psutil.Process(pid).is_running()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: alive
        return True
