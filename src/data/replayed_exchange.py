"""A replayed exchange for `replay`: a loopback HTTP server that speaks Binance's public spot REST API (ping, time,
exchangeInfo, klines) over past candles, answering as the exchange would have at the service's clock
(src.utils.clock): its time is that clock, and a candle exists only once it has opened by then (the open one
too, as Binance returns it; the fetcher keeps closed candles only). The daemon's own fetcher (CCXT) reads it
through `exchange.api_urls`, so candles reach the replay's database exactly as they would reach a live one's.

Candles come from a folder of CSV files (`BTC_USDT-1h.csv.gz`: timestamp in ms, open, high, low, close, volume;
the shared data's and the demo sample's form) or from another database's ohlcv_data. Hours missing there are
missing here, as the exchange never published them. Only 127.0.0.1 is bound."""
from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from src.utils.clock import utc_now
from src.utils.errors import UserError

log = logging.getLogger(__name__)
HOUR_MS = 3_600_000
PAGE_LIMIT = 1000


def market_id(symbol: str) -> str:
    """BTC/USDT -> BTCUSDT (Binance's spot id)."""
    return symbol.replace("/", "")


def read_source(source: str, symbols: list[str], timeframe: str = "1h") -> dict[str, np.ndarray]:
    """Per market id, rows [open ms, open, high, low, close, volume] sorted by time, from a CSV folder or a
    postgresql:// URL. A symbol the source lacks is an error naming what was looked for."""
    if timeframe != "1h":
        raise UserError(f"replay: timeframe {timeframe} is not replayed; only 1h candles are")
    if source.startswith("postgresql"):
        return _from_database(source, symbols, timeframe)
    folder = Path(source)
    if not folder.is_dir():
        raise UserError(f"replay --source {source}: not a folder of candle CSV files nor a postgresql:// URL")
    out = {}
    for symbol in symbols:
        name = symbol.replace("/", "_").replace(":", "_")
        files = [f for f in (folder / f"{name}-1h.csv.gz", folder / f"{name}-1h.csv") if f.exists()]
        if not files:
            raise UserError(f"replay --source {source}: no {name}-1h.csv.gz (or .csv) for {symbol}")
        frame = pd.read_csv(files[0])
        out[market_id(symbol)] = frame[["timestamp", "open", "high", "low", "close", "volume"]].sort_values(
            "timestamp").to_numpy(dtype=float)
    return out


def _from_database(url: str, symbols: list[str], timeframe: str) -> dict[str, np.ndarray]:
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    out = {}
    try:
        with engine.connect() as conn:
            for symbol in symbols:
                rows = conn.execute(text(
                    "SELECT (extract(epoch FROM timestamp) * 1000)::bigint, open::float8, high::float8, low::float8, "
                    "close::float8, volume::float8 FROM ohlcv_data WHERE symbol = :s AND timeframe = :tf "
                    "ORDER BY timestamp"), {"s": symbol, "tf": timeframe}).all()
                if not rows:
                    raise UserError(f"replay --source: the database holds no {timeframe} candles of {symbol}")
                out[market_id(symbol)] = np.array(rows, dtype=float)
    finally:
        engine.dispose()
    return out


class _Handler(BaseHTTPRequestHandler):
    candles: dict[str, np.ndarray]

    def log_message(self, *args) -> None:  # the daemon logs what it fetched
        pass

    def _send(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        now_ms = int(utc_now().timestamp() * 1000)
        if url.path.endswith("/ping"):
            return self._send(200, {})
        if url.path.endswith("/time"):
            return self._send(200, {"serverTime": now_ms})
        if url.path.endswith("/exchangeInfo"):
            return self._send(200, self._exchange_info(now_ms))
        if url.path.endswith("/klines"):
            return self._send(*self._klines(query, now_ms))
        return self._send(404, {"code": -1, "msg": f"no route {url.path}"})

    def _exchange_info(self, now_ms: int) -> dict:
        symbols = [{"symbol": market, "status": "TRADING", "baseAsset": market.removesuffix("USDT"),
                    "baseAssetPrecision": 8, "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                    "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
                    "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.00000001", "maxPrice": "10000000",
                                 "tickSize": "0.00000001"},
                                {"filterType": "LOT_SIZE", "minQty": "0.00000001", "maxQty": "90000000",
                                 "stepSize": "0.00000001"}]}
                   for market in self.candles]
        return {"timezone": "UTC", "serverTime": now_ms, "rateLimits": [], "symbols": symbols}

    def _klines(self, query: dict, now_ms: int) -> tuple[int, object]:
        rows = self.candles.get(query.get("symbol", ""))
        if rows is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != "1h":
            return 400, {"code": -1120, "msg": "Invalid interval."}
        start = int(query.get("startTime", 0))
        end = min(int(query.get("endTime", now_ms)), now_ms)  # nothing that had not opened by the clock
        first, last = np.searchsorted(rows[:, 0], start, side="left"), np.searchsorted(rows[:, 0], end, side="right")
        page = rows[first:min(last, first + min(int(query.get("limit", 500)), PAGE_LIMIT))]
        return 200, [[int(r[0]), *(repr(float(x)) for x in r[1:6]), int(r[0]) + HOUR_MS - 1, "0", 1, "0", "0", "0"]
                     for r in page]


class ReplayedExchange:
    """The server, run as a context: `api_url` goes into exchange.api_urls.public."""

    def __init__(self, candles: dict[str, np.ndarray]):
        handler = type("Handler", (_Handler,), {"candles": candles})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="replayed-exchange", daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v3"

    def __enter__(self) -> ReplayedExchange:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
