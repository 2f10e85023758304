"""Proof that a change kept behaviour: run the same work on the shared candles and dump every stored record,
then compare two dumps.

    python bench/compare_records.py record OUT.json   # in a checkout: import, backtest, train, predict, ...
    python bench/compare_records.py compare A.json B.json

The work: the three assets' candles imported with import-csv, `backtest --start 2023-11-01 --end 2024-01-01
--retrain-every 30`, `train`, `predict --at 2023-12-20T05:10`, `outcomes --at 2024-01-01` and `performance
--date 2023-12-20`, each through the command line, in a throwaway embedded database. The dump holds every
prediction, how-soon forecast, outcome, performance row and registry row (metrics included), with what is
random by design left out: ids, creation times, the random tail of a model version, file paths and
checksums (a pickle names its classes' modules, so a move changes the bytes, not the model)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

SHARED = Path(os.environ.get("CRYPTO_ML_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ASSETS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
STEPS = (("backtest", "--start", "2023-11-01", "--end", "2024-01-01", "--retrain-every", "30"),
         ("train",), ("predict", "--at", "2023-12-20T05:10"), ("outcomes", "--at", "2024-01-01"),
         ("performance", "--date", "2023-12-20"))
QUERIES = {
    "predictions": """SELECT p.run_type, p.symbol, p.target_pct, p.timestamp, p.model_name, p.model_version,
        p.is_champion, p.prediction_class, p.probability, p.confidence, p.entry_price, o.status, o.actual_outcome,
        o.target_hit_timestamp, o.time_to_target_hours, o.max_favorable_move, o.max_adverse_move
        FROM predictions p LEFT JOIN prediction_outcomes o ON o.prediction_id = p.id""",
    "resolution_forecasts": """SELECT run_type, symbol, target_pct, timestamp, model_name, model_version,
        is_champion, p_6h, p_24h, p_horizon, q10_hours, q50_hours, q90_hours, status, hours_to_resolution
        FROM resolution_forecasts""",
    "model_performance": """SELECT run_type, symbol, timeframe, task, target_pct, model_name, evaluation_date,
        window_days, to_jsonb(m) - 'id' - 'created_at' AS row FROM model_performance m""",
    "model_registry": """SELECT symbol, target_pct, task, model_name, version, feature_version, train_start,
        train_end, n_samples, metrics, is_champion FROM model_registry""",
}
RANDOM_TAIL = re.compile(r"-[0-9a-f]{6}(?=$|-)")  # the uuid part of a registry version


def record(out: Path) -> None:
    root = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump({"paths": {"data_dir": f"{tmp}/data", "logs_dir": f"{tmp}/logs"}}))
        env = {**os.environ, "CRYPTO_ML_CONFIG": str(config), "TZ": "UTC"}
        env.pop("DATABASE_URL", None)
        for asset in ASSETS:
            _run(root, env, "import-csv", str(SHARED / "data" / f"{asset.replace('/', '_')}-1h.csv.gz"),
                 "--symbol", asset)
        for step in STEPS:
            _run(root, env, *step)
        out.write_text(json.dumps(_dump(root, env), indent=0, sort_keys=True, default=str))
    print(f"records written to {out}")


def _run(root: Path, env: dict, *args: str) -> None:
    print("$ python -m src.main " + " ".join(args), file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "src.main", *args], cwd=root, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def _dump(root: Path, env: dict) -> dict[str, list]:
    """Every table's rows, as sorted lists of JSON values (run in the checkout, on its database)."""
    code = ("import json, sys\nfrom sqlalchemy import text\nfrom src.utils.config import Config\n"
            "from src.scheduler.services import Context\nqueries = json.loads(sys.stdin.read())\n"
            "ctx = Context(Config(None))\nout = {}\n"
            "with ctx.ops.db.engine.connect() as conn:\n"
            "    for name, sql in queries.items():\n"
            "        out[name] = [list(r) for r in conn.execute(text(sql)).all()]\n"
            "print(json.dumps(out, default=str))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, check=True, capture_output=True,
                          text=True, input=json.dumps(QUERIES))
    tables = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: sorted(json.dumps(_normalise(row), sort_keys=True, default=str) for row in rows)
            for name, rows in tables.items()}


def _normalise(row: list) -> list:
    return [RANDOM_TAIL.sub("", v) if isinstance(v, str) else v for v in row]


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    different = 0
    for name in sorted(set(left) | set(right)):
        rows_a, rows_b = set(left.get(name, [])), set(right.get(name, []))
        only_a, only_b = rows_a - rows_b, rows_b - rows_a
        verdict = "identical" if not (only_a or only_b) else f"{len(only_a)} rows only in A, {len(only_b)} only in B"
        print(f"{name:<22} {len(rows_a):>7} rows in A, {len(rows_b):>7} in B: {verdict}")
        for row in sorted(only_a)[:3]:
            print(f"   A: {row[:300]}")
        for row in sorted(only_b)[:3]:
            print(f"   B: {row[:300]}")
        different += len(only_a) + len(only_b)
    return 1 if different else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "record":
        record(Path(sys.argv[2]).resolve())
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
