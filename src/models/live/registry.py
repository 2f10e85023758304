"""Model registry: model files under data/models/<version>/ plus a metadata row per model (model_registry).

Each model is saved with joblib (the calibrated scikit-learn estimator); xgboost's boosters are also
written in xgboost's own format (booster-k.ubj), readable by any xgboost. A checksum guards the file,
and a model whose feature version differs from the running code refuses to load.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import platform
import shutil
import sys
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import joblib
import pandas as pd
import sklearn
import xgboost

from src.data.features import FEATURE_VERSION
from src.database.records import RecordStore
from src.utils.errors import UserError

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


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ModelRegistry:
    """`cache_size`: loaded models kept in memory (least recently used dropped first). Size it to hold the
    models one cycle uses, twice over (the day's fresh fits beside the ones they replace): a daily refit
    makes new versions every day, and an unbounded cache would grow with each."""

    def __init__(self, records: RecordStore, models_dir: Path, cache_size: int = 64):
        self.records = records
        self.models_dir = models_dir
        self.cache_size = cache_size
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()

    def save(self, estimator, *, symbol: str, timeframe: str, target: float, model_name: str,
             train_start: datetime, train_end: datetime, n_samples: int, metrics: dict,
             task: str = "direction") -> str:
        """Write the model's files and its metadata row; returns its version. `task`: 'direction' (P(UP))
        or 'resolution' (how soon; its versions say 'time')."""
        kind = model_name if task == "direction" else f"time-{model_name}"
        version = f"{symbol.replace('/', '')}-{target:g}-{kind}-{train_end:%Y%m%d%H}-{uuid.uuid4().hex[:6]}"
        folder = self.models_dir / version
        folder.mkdir(parents=True, exist_ok=False)
        joblib.dump(estimator, folder / "model.joblib")
        if task == "direction" and model_name == "xgboost":
            for k, calibrated in enumerate(estimator.calibrated_classifiers_):
                calibrated.estimator.get_booster().save_model(str(folder / f"booster-{k}.ubj"))
        libraries = {"python": platform.python_version(), "xgboost": xgboost.__version__,
                     "scikit-learn": sklearn.__version__, "pandas": pd.__version__}
        row = {"symbol": symbol, "timeframe": timeframe, "target_pct": target, "model_name": model_name, "task": task,
               "version": version, "feature_version": FEATURE_VERSION, "path": version,
               "checksum": _sha256(folder / "model.joblib"), "train_start": train_start, "train_end": train_end,
               "n_samples": n_samples, "metrics": metrics, "library_versions": libraries}
        (folder / "meta.json").write_text(json.dumps(row, default=str, indent=2))
        self.records.add_model(row)
        return version

    def folder(self, path: str) -> Path:
        """A registry row's model folder: its path is relative to the models folder (so the data folder can
        move, and a database copied with its models folder finds its own files)."""
        return self.models_dir / path

    def load(self, row: pd.Series | dict) -> LoadedModel:
        """Load a registry row's model, checking its feature version and checksum."""
        version = row["version"]
        if version in self._cache:
            self._cache.move_to_end(version)
            return self._cache[version]
        if row["feature_version"] != FEATURE_VERSION:
            raise UserError(f"model {version} was trained on features {row['feature_version']}, this code computes "
                            f"{FEATURE_VERSION}; retrain with: python -m src.main train")
        path = self.folder(row["path"]) / "model.joblib"
        if not path.exists() or _sha256(path) != row["checksum"]:
            raise UserError(f"model file {path} is missing or altered; retrain with: python -m src.main train")
        _alias_legacy_modules()
        loaded = LoadedModel(version, row["model_name"], joblib.load(path), dict(row))
        self._cache[version] = loaded
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return loaded

    def prune(self, symbol: str, timeframe: str, target: float, keep: int = 3, keep_retired_files: int = 7,
              task: str = "direction") -> int:
        """Delete the files and rows of models that were never champion, beyond the newest `keep` of each
        kind. Retired champions keep their rows (the champion history) but only the newest
        `keep_retired_files` keep their files: a fresh champion is deployed every day. Returns rows removed."""
        rows = self.records.models(symbol, timeframe, target, task=task)
        never = rows[~rows["is_champion"] & rows["promoted_at"].isna()]
        doomed = never.groupby("model_name", group_keys=False).apply(lambda g: g.iloc[:-keep] if keep else g)
        retired = rows[~rows["is_champion"] & rows["promoted_at"].notna()]
        old_files = retired["path"].iloc[:-keep_retired_files] if keep_retired_files else retired["path"]
        for path in [*doomed["path"], *old_files]:
            shutil.rmtree(self.folder(path), ignore_errors=True)
        for version in [*doomed["version"], *retired["version"].iloc[:len(old_files)]]:
            self._cache.pop(version, None)
        self.records.delete_models(list(doomed["version"]))
        return len(doomed)

    def current_all(self, timeframe: str) -> dict[tuple[str, float, str], dict[str, pd.Series]]:
        """`current` of every asset x target x task at once, keyed (symbol, target rounded to 6, task)."""
        groups: dict[tuple[str, float, str], dict[str, pd.Series]] = {}
        for _, row in self.records.current_models(timeframe).iterrows():
            models = groups.setdefault((row["symbol"], round(row["target_pct"], 6), row["task"]), {})
            if row["is_champion"]:
                models["champion"] = row
            models.setdefault(row["model_name"], row)
        for models in groups.values():  # predict with the champion itself
            if "champion" in models:
                models[models["champion"]["model_name"]] = models["champion"]
        return groups

    def current(self, symbol: str, timeframe: str, target: float, as_of: pd.Timestamp | None = None,
                task: str = "direction") -> dict[str, pd.Series]:
        """The newest model of each name for one asset x target, and which is champion (key 'champion').
        With `as_of`, the registry as it stood then: models created by that time, and the champion that was
        serving at it (none if no champion had been promoted yet)."""
        rows = self.records.models(symbol, timeframe, target, task=task)
        if as_of is not None:
            rows = rows[rows["created_at"] <= as_of]
            serving = (rows["promoted_at"] <= as_of) & (rows["retired_at"].isna() | (rows["retired_at"] > as_of))
            champions = rows[serving]
        else:
            champions = rows[rows["is_champion"]]
        latest = {name: group.iloc[-1] for name, group in rows.groupby("model_name")}
        if len(champions):
            champion = champions.iloc[-1]
            latest[champion["model_name"]] = champion  # predict with the champion itself
            latest["champion"] = champion
        return latest
