"""The model registry trusts a row only for what it is, and a crash leaves nothing half-written behind: files
written whole and synced before their row, folders no row names removed at start, a model read from the
models folder / its version only, its bytes hashed once and loaded, other library versions refused."""
from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from src.database.records import RecordStore
from src.models.estimators.direction import ClimatologyModel, prob_up
from src.models.live.registry import WRITING, ModelRegistry
from src.utils.errors import UserError

NOW = pd.Timestamp("2023-01-01", tz="UTC")
ROWS = pd.DataFrame({"f": [1.0, 2.0]})


def _save(registry: ModelRegistry, share_up: float = 0.7) -> str:
    y = np.array([1] * int(share_up * 10) + [0] * (10 - int(share_up * 10)))
    return registry.save(ClimatologyModel().fit(np.zeros((10, 1)), y), symbol="BTC/USDT", timeframe="1h",
                         target=0.02, model_name="climatology", train_start=NOW, train_end=NOW, n_samples=10,
                         metrics={})


@pytest.fixture
def registry(db, tmp_path) -> ModelRegistry:
    return ModelRegistry(RecordStore(db), tmp_path / "models")


def _row(registry: ModelRegistry, version: str) -> dict:
    rows = registry.records.models("BTC/USDT", "1h", 0.02)
    return rows[rows["version"] == version].iloc[0].to_dict()


def test_a_saved_model_is_whole_synced_named_by_its_version_and_loads(registry):
    version = _save(registry)
    assert sorted(p.name for p in registry.models_dir.iterdir()) == [version]  # no writing folder left
    assert {p.name for p in (registry.models_dir / version).iterdir()} == {"model.joblib", "meta.json"}
    row = _row(registry, version)
    assert row["path"] == version  # relative: the data folder may move
    assert prob_up(ModelRegistry(registry.records, registry.models_dir).load(row).estimator, ROWS)[0] == 0.7


def test_folders_no_row_names_are_removed_at_start_and_nothing_else(registry):
    kept = _save(registry)
    orphan = registry.models_dir / "BTCUSDT-0.02-xgboost-2023010100-abcdef"  # killed before its row
    orphan.mkdir()
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    young = registry.models_dir / "BTCUSDT-0.02-xgboost-2023010100-fedcba"  # its row may be on its way
    young.mkdir()
    dead = registry.models_dir / f"{WRITING}999999999-BTCUSDT-0.02-logistic-2023010100-012345"  # killed mid-write
    dead.mkdir()
    started = round(psutil.Process().create_time() * 100)
    running = registry.models_dir / f"{WRITING}{os.getpid()}-{started}-BTCUSDT-0.02-logistic-2023010100-543210"
    running.mkdir()
    # a container's daemon is PID 1 at every start: the PID alive, but not the process that wrote the folder
    reused = registry.models_dir / f"{WRITING}{os.getpid()}-{started - 500}-BTCUSDT-0.02-logistic-2023010100-aaaaaa"
    reused.mkdir()
    unrelated = registry.models_dir / "notes"
    unrelated.mkdir()
    assert registry.remove_orphans() == 3
    assert sorted(p.name for p in registry.models_dir.iterdir()) == sorted(
        [kept, young.name, running.name, "notes"])


def test_a_row_pointing_outside_the_models_folder_is_refused(registry, tmp_path):
    version = _save(registry)
    outside = tmp_path / "elsewhere"
    (outside / "x").mkdir(parents=True)
    (outside / "x" / "model.joblib").write_bytes((registry.models_dir / version / "model.joblib").read_bytes())
    row = _row(registry, version)
    # a path in the row is never followed: the version names the folder
    assert ModelRegistry(registry.records, registry.models_dir).load({**row, "path": str(outside / "x")})
    for bad in ("../elsewhere/x", "/etc/passwd", f"{version}/../../elsewhere/x"):
        with pytest.raises(UserError, match="not one this registry writes"):
            ModelRegistry(registry.records, registry.models_dir).load({**row, "version": bad})


def test_a_changed_byte_or_another_library_version_is_refused_with_the_reason(registry):
    version = _save(registry)
    row = _row(registry, version)
    with pytest.raises(UserError, match=r"xgboost 1\.7\.6.*retrain"):
        registry.load({**row, "library_versions": {**row["library_versions"], "xgboost": "1.7.6"}})
    with pytest.raises(UserError, match=r"scikit-learn 0\.24\.2.*retrain"):
        registry.load({**row, "library_versions": {**row["library_versions"], "scikit-learn": "0.24.2"}})
    path = registry.models_dir / version / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match its checksum"):
        registry.load(row)
    path.unlink()
    with pytest.raises(UserError, match="missing"):
        registry.load(row)


def test_pruning_deletes_only_inside_the_models_folder(registry, tmp_path):
    keep = tmp_path / "precious"
    keep.mkdir()
    versions = [_save(registry) for _ in range(5)]
    with registry.records.db.engine.begin() as conn:  # a hostile path in a row changes nothing
        conn.exec_driver_sql("UPDATE model_registry SET path = %s", (str(keep),))
    assert registry.prune("BTC/USDT", "1h", 0.02, keep=3) == 2
    assert keep.exists()
    assert sorted(p.name for p in registry.models_dir.iterdir()) == sorted(versions[2:])


def test_a_model_that_learned_over_another_horizon_is_refused(registry):
    version = _save(registry)
    row = _row(registry, version)
    row = {**row, "metrics": {**(row["metrics"] or {}), "horizon_hours": 168}}
    assert ModelRegistry(registry.records, registry.models_dir, horizon=168).load(row)
    with pytest.raises(UserError, match=r"learned labels over 168 h, ml.horizon_hours is 72; retrain"):
        ModelRegistry(registry.records, registry.models_dir, horizon=72).load(row)


def test_pruning_keeps_the_newest_fits_and_the_files_of_the_newest_7_retired_champions(registry):
    """Fits never promoted: the newest 3 kept (files and rows). Retired champions: every row kept (the history)
    until the retention removes it, but only the newest 7 keep their files; the champion keeps its own."""
    never = [_save(registry) for _ in range(5)]
    champions = []
    for _ in range(10):  # ten daily retrains, each deploying a fresh champion
        champions.append(_save(registry))
        registry.records.promote(champions[-1])
    removed = registry.prune("BTC/USDT", "1h", 0.02)
    rows = registry.records.models("BTC/USDT", "1h", 0.02)
    assert removed == 2 and set(never[:2]).isdisjoint(rows["version"]) and set(never[2:]) <= set(rows["version"])
    assert set(champions) <= set(rows["version"])  # every champion's row: the history
    with_files = {p.name for p in registry.models_dir.iterdir()}
    retired = champions[:-1]
    assert with_files == set(never[2:]) | set(retired[-7:]) | {champions[-1]}
    assert registry.load(_row(registry, champions[-1])) and registry.load(_row(registry, retired[-7]))
    with pytest.raises(UserError, match="missing"):
        registry.load(_row(registry, retired[-8]))
    assert registry.remove_retired() == 2  # the retention: rows past their files' lifetime
    assert set(registry.records.models("BTC/USDT", "1h", 0.02)["version"]) == set(never[2:]) | set(retired[-7:]) | {
        champions[-1]}


def test_current_models_are_read_again_whenever_the_registry_changed(registry):
    """The hourly cycle's current models are read once per change of the registry (a save, a promotion, a prune by
    this process or another), never served stale."""
    first = _save(registry)
    registry.records.promote(first)
    before = registry.current_all("1h")
    assert before[("BTC/USDT", 0.02, "direction")]["champion"]["version"] == first
    other = ModelRegistry(registry.records, registry.models_dir)  # another process's registry
    second = _save(other)
    assert registry.current_all("1h") is not before  # read again (the champion itself still serves)
    other.records.promote(second)
    assert registry.current_all("1h")[("BTC/USDT", 0.02, "direction")]["champion"]["version"] == second
    state = registry.records.registry_state("1h")
    other.records.delete_models([first])
    assert registry.records.registry_state("1h") != state
    assert registry.current_all("1h") is registry.current_all("1h")  # unchanged: the same answer, not read again
