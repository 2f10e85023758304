"""Two runs of the same hours compared forecast by forecast (`compare-runs`): a replay of the daemon and a backtest
on its schedule must store the same forecasts. Each difference is put under its cause, in the order a reader
fixes them: a forecast only one run made, a different training end (the models' cut), a different champion, a
different forecast, a different outcome. Values are compared as stored (probabilities to 6 decimals, hours to
0.01), within TOLERANCE."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from src.database.records import RecordStore

TOLERANCE = 1e-9
VERSION_HOUR = re.compile(r"-(\d{10})-[0-9a-f]{6}$")  # the registry's version names carry the training end's hour
KEY = ["symbol", "timeframe", "target_pct", "timestamp", "model_name"]
TIMING_VALUES = ["p_6h", "p_24h", "p_horizon", "q10_hours", "q50_hours", "q90_hours"]
CAUSES = ("only in the first run", "only in the second run", "training end", "champion", "direction forecast",
          "how-soon forecast", "outcome")


@dataclass
class Comparison:
    first: str
    second: str
    compared: dict[str, int] = field(default_factory=dict)  # forecasts present in both, per table
    differences: dict[str, pd.DataFrame] = field(default_factory=dict)  # cause -> rows

    @property
    def total(self) -> int:
        return sum(len(rows) for rows in self.differences.values())

    def report(self, examples: int = 5) -> str:
        lines = [f"{self.first} vs {self.second}: " + ", ".join(f"{n} {table} forecasts in both"
                                                                for table, n in self.compared.items())]
        for cause in CAUSES:
            rows = self.differences.get(cause)
            count = 0 if rows is None else len(rows)
            lines.append(f"  {cause:<24} {count:>7}")
            for row in ([] if rows is None else rows.head(examples).itertuples(index=False)):
                lines.append("      " + " ".join(f"{v:%Y-%m-%d %H:%M}" if isinstance(v, pd.Timestamp) else str(v)
                                                for v in row))
        lines.append(f"{self.total} differences" + (" (the two runs stored the same forecasts)"
                                                     if not self.total else ""))
        return "\n".join(lines)


def train_end(version: str, registry: dict[str, pd.Timestamp]) -> pd.Timestamp | None:
    """A forecast's training end: the registry's for the daemon's models; for a version whose row was pruned (the
    registry keeps the newest retired ones only), the hour its name carries (`...-YYYYmmddHH-xxxxxx`); a backtest's
    its own ('backtest-YYYYmmddHHMM')."""
    if version in registry:
        return registry[version]
    if version.startswith("backtest-"):
        return pd.Timestamp(pd.to_datetime(version.removeprefix("backtest-"), format="%Y%m%d%H%M"), tz="UTC")
    named = VERSION_HOUR.search(version)
    return None if named is None else pd.Timestamp(pd.to_datetime(named.group(1), format="%Y%m%d%H"), tz="UTC")


def same_train_ends(both: pd.DataFrame, registry: dict[str, pd.Timestamp]) -> np.ndarray:
    """Per row of the merged runs, whether the two training ends are equal: exactly where both are known exactly,
    to the hour where one is known only from its version's name. An unknown one never equals."""
    def exact(versions: pd.Series) -> np.ndarray:
        named = versions.map(lambda v: VERSION_HOUR.search(v) is not None)
        return (versions.isin(registry.keys()) | ~named).to_numpy()
    a = pd.to_datetime(both["model_version_a"].map(lambda v: train_end(v, registry)), utc=True)
    b = pd.to_datetime(both["model_version_b"].map(lambda v: train_end(v, registry)), utc=True)
    both_exact = exact(both["model_version_a"]) & exact(both["model_version_b"])
    return np.where(both_exact, (a == b).to_numpy(), (a.dt.floor("h") == b.dt.floor("h")).to_numpy())


def compare_runs(records: RecordStore, first: str, second: str, start: pd.Timestamp | None = None,
                 end: pd.Timestamp | None = None) -> Comparison:
    """Every difference between the stored forecasts of two runs over [start, end), grouped by cause."""
    result = Comparison(first, second)
    registry = records.train_ends()
    a_direction, a_timing = records.run_forecasts(first, start, end)
    b_direction, b_timing = records.run_forecasts(second, start, end)
    found: dict[str, list[pd.DataFrame]] = {cause: [] for cause in CAUSES}
    for table, a, b, values in (("direction", a_direction, b_direction, ["probability"]),
                                ("how-soon", a_timing, b_timing, TIMING_VALUES)):
        merged = a.merge(b, on=KEY, how="outer", suffixes=("_a", "_b"), indicator=True)
        found["only in the first run"].append(merged.loc[merged["_merge"] == "left_only", KEY].assign(table=table))
        found["only in the second run"].append(merged.loc[merged["_merge"] == "right_only", KEY].assign(table=table))
        both = merged[merged["_merge"] == "both"]
        result.compared[table] = len(both)
        differ = ~same_train_ends(both, registry)
        found["training end"].append(both.loc[differ, KEY].assign(
            table=table, first=both.loc[differ, "model_version_a"], second=both.loc[differ, "model_version_b"]))
        champion = both["is_champion_a"] != both["is_champion_b"]
        found["champion"].append(both.loc[champion, KEY].assign(table=table))
        cause = "direction forecast" if table == "direction" else "how-soon forecast"
        gaps = [np.abs(both[f"{v}_a"].to_numpy(float) - both[f"{v}_b"].to_numpy(float)) for v in values]
        gap = np.max(gaps, axis=0) if len(both) else np.array([])
        found[cause].append(both.loc[gap > TOLERANCE, KEY].assign(largest_gap=gap[gap > TOLERANCE]))
        outcome = ["status", "actual_outcome"] if table == "direction" else ["status", "hours_to_resolution"]
        differs = np.zeros(len(both), bool)
        for column in outcome:
            x, y = both[f"{column}_a"], both[f"{column}_b"]
            differs |= ~((x == y) | (x.isna() & y.isna())).to_numpy()
        found["outcome"].append(both.loc[differs, KEY].assign(table=table, first=both.loc[differs, "status_a"],
                                                              second=both.loc[differs, "status_b"]))
    result.differences = {cause: pd.concat(frames, ignore_index=True) for cause, frames in found.items()}
    return result
