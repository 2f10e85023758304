"""import-csv: load candles from a CSV (timestamp,open,high,low,close,volume; ms UTC; plain or gzip).

Every row is validated before anything is written; one bad row refuses the whole file.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from src.database.operations import DatabaseOperations
from src.utils.candles import CANDLE_COLUMNS, candle_problems
from src.utils.config import TIMEFRAME_MS
from src.utils.errors import UserError


def read_candle_csv(path: Path, timeframe: str = "1h") -> pd.DataFrame:
    """The file's candles, validated; raises UserError naming the first bad line and why."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a CSV of candles")
    try:
        frame = pd.read_csv(path, dtype=str, compression="infer", keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    if list(frame.columns) != CANDLE_COLUMNS:
        raise UserError(f"{path}: header is {','.join(frame.columns)}; expected {','.join(CANDLE_COLUMNS)}")
    if frame.empty:
        raise UserError(f"{path}: no rows after the header")
    problems = candle_problems(frame, TIMEFRAME_MS[timeframe])
    duplicated = frame["timestamp"].duplicated()
    problems[duplicated & (problems == "")] = "timestamp appears twice in the file"
    bad = problems[problems != ""]
    if len(bad):
        index = bad.index[0]
        raise UserError(f"{path} line {index + 2}: {bad.iloc[0]} ({','.join(frame.loc[index])}); "
                        f"{len(bad)} bad rows in all, nothing stored - fix the file and import again")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    for column in CANDLE_COLUMNS[1:]:
        frame[column] = frame[column].astype(float)
    return frame.sort_values("timestamp").reset_index(drop=True)


def import_csv(db: DatabaseOperations, path: Path, symbol: str, timeframe: str = "1h",
               frame: pd.DataFrame | None = None) -> tuple[int, int]:
    """Validate then store the file in one transaction (`frame`: the file already read by read_candle_csv).
    Returns (rows in file, rows written)."""
    frame = read_candle_csv(path, timeframe) if frame is None else frame
    written = db.save_ohlcv_data(symbol, timeframe, frame)
    db.refresh_recent_view()
    return len(frame), written
