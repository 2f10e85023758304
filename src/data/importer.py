"""import-csv: load candles from a CSV (timestamp,open,high,low,close,volume; ms UTC; plain or gzip).

Every row is validated before anything is written; one bad row refuses the whole file. Values are kept
as the decimals written in the file (never rounded through float). A candle already stored with other
values is never overwritten unless asked (--replace): the import is refused, saying how many differ.
Hours missing inside the file are recorded as exchange gaps (never published).
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pandas as pd

from src.database.operations import DatabaseOperations
from src.utils.candles import CANDLE_COLUMNS, candle_problems, ms_to_datetime
from src.utils.config import TIMEFRAME_MS
from src.utils.errors import UserError


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, compression="infer", keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: the file is empty; expected a header line {','.join(CANDLE_COLUMNS)} "
                        "and one candle per line") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: the gzip data is truncated or damaged ({exc}); copy or download the file "
                        "again") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def read_candle_csv(path: Path, timeframe: str = "1h") -> pd.DataFrame:
    """The file's candles, validated, values as the file's decimal strings; raises UserError naming the
    first bad line and why."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the path of a CSV of candles")
    frame = _read(path)
    if list(frame.columns) != CANDLE_COLUMNS:
        raise UserError(f"{path}: header is {','.join(frame.columns)}; expected {','.join(CANDLE_COLUMNS)}")
    if frame.empty:
        raise UserError(f"{path}: no rows after the header")
    frame = frame.apply(lambda column: column.str.strip())
    problems = candle_problems(frame, TIMEFRAME_MS[timeframe])
    not_integer = ~frame["timestamp"].str.fullmatch(r"-?\d+")
    problems[not_integer & (problems == "")] = "timestamp is not a whole number of milliseconds"
    duplicated = frame["timestamp"].duplicated()
    problems[duplicated & (problems == "")] = "timestamp appears twice in the file"
    bad = problems[problems != ""]
    if len(bad):
        index = bad.index[0]
        raise UserError(f"{path} line {index + 2}: {bad.iloc[0]} ({','.join(frame.loc[index])}); "
                        f"{len(bad)} bad rows in all, nothing stored - fix the file and import again")
    frame["timestamp"] = frame["timestamp"].astype("int64")
    return frame.sort_values("timestamp").reset_index(drop=True)


def import_csv(db: DatabaseOperations, path: Path, symbol: str, timeframe: str = "1h",
               frame: pd.DataFrame | None = None, replace: bool = False) -> tuple[int, int]:
    """Validate then store the file in one transaction (`frame`: the file already read by read_candle_csv).
    Returns (rows in file, rows written)."""
    frame = read_candle_csv(path, timeframe) if frame is None else frame
    written, differing = db.import_candles(symbol, timeframe, frame, replace)
    if differing and not replace:
        raise UserError(f"{path}: {differing} candles differ from those already stored for {symbol}; nothing "
                        "stored - check the file, or import it with --replace to overwrite them")
    _record_history_gaps(db, symbol, timeframe, frame)
    db.refresh_recent_view()
    return len(frame), written


def _record_history_gaps(db: DatabaseOperations, symbol: str, timeframe: str, frame: pd.DataFrame) -> None:
    """Hours missing inside an imported history are taken as never published (as in Binance's own files),
    the one rule that training, backtest and live outcomes share: recorded exchange gaps."""
    step = TIMEFRAME_MS[timeframe]
    first, last = int(frame["timestamp"].iloc[0]), int(frame["timestamp"].iloc[-1])
    hours = (last - first) // step + 1
    gaps = db.check_data_gaps(symbol, timeframe, hours, end=ms_to_datetime(last))
    db.record_exchange_gaps(symbol, timeframe, gaps)
