"""A loopback HTTP server that speaks Binance's public spot REST API (ping, time, exchangeInfo, klines),
serving real candles from shared/data shifted so that the newest candle is the one open now.

Faults are queued per test and consumed one request at a time: 429 with Retry-After, 500, a slow answer,
short pages, duplicated and out-of-order rows. Only 127.0.0.1 is ever bound.
"""
from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import numpy as np

from tests.loopback_server import LoopbackServer
from tests.shared_data import load_candles

HOUR_MS = 3_600_000


@dataclass
class Fault:
    kind: str  # "429" | "500" | "slow" | "short" | "dup" | "shuffle" | "418"
    seconds: float = 0.0
    rows: int = 0


@dataclass
class ExchangeState:
    candles: dict[str, np.ndarray] = field(default_factory=dict)  # BTCUSDT -> rows [ms, o, h, l, c, v]
    faults: deque = field(default_factory=deque)
    requests: list[str] = field(default_factory=list)
    include_open_candle: bool = True  # like the real exchange: the current candle is returned too

    def now_ms(self) -> int:
        return int(time.time() * 1000)


def shifted_candles(symbol_file: str, start: str, end: str, newest_open_ms: int) -> np.ndarray:
    """Real candles between start and end (inclusive, UTC), moved in whole hours so the last is newest_open_ms."""
    frame = load_candles(symbol_file, start, end)
    rows = frame.to_numpy(dtype=float)
    rows[:, 0] += newest_open_ms - rows[-1, 0]
    return rows


class _Handler(BaseHTTPRequestHandler):
    state: ExchangeState

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: object, headers: dict | None = None) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.state.requests.append(url.path)
        fault = self.state.faults.popleft() if url.path.endswith("/klines") and self.state.faults else None
        if fault and fault.kind in ("429", "418"):
            return self._send(int(fault.kind), {"code": -1003, "msg": "Too many requests"},
                              {"Retry-After": str(int(fault.seconds))})
        if fault and fault.kind == "500":
            return self._send(500, {"code": -1000, "msg": "internal error"})
        if fault and fault.kind == "slow":
            time.sleep(fault.seconds)
        routes = {"/api/v3/ping": lambda: {}, "/api/v3/time": lambda: {"serverTime": self.state.now_ms()},
                  "/api/v3/exchangeInfo": self._exchange_info, "/api/v3/klines": lambda: self._klines(query, fault)}
        if url.path not in routes:
            return self._send(404, {"code": -1, "msg": f"no route {url.path}"})
        result = routes[url.path]()
        if isinstance(result, tuple):
            return self._send(*result)
        self._send(200, result)

    def _exchange_info(self) -> dict:
        symbols = []
        for market in self.state.candles:
            base = market.removesuffix("USDT")
            symbols.append({
                "symbol": market, "status": "TRADING", "baseAsset": base, "baseAssetPrecision": 8,
                "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8,
                "orderTypes": ["LIMIT", "MARKET"], "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False, "permissions": ["SPOT"], "permissionSets": [["SPOT"]],
                "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000",
                             "tickSize": "0.01"},
                            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000",
                             "stepSize": "0.00001"}]})
        return {"timezone": "UTC", "serverTime": self.state.now_ms(), "rateLimits": [], "symbols": symbols}

    def _klines(self, query: dict, fault: Fault | None):
        rows = self.state.candles.get(query.get("symbol", ""))
        if rows is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if query.get("interval") != "1h":
            return 400, {"code": -1120, "msg": "Invalid interval."}
        limit = min(int(query.get("limit", 500)), 1000)
        start = int(query.get("startTime", 0))
        now = self.state.now_ms()
        visible = rows[(rows[:, 0] >= start) & (rows[:, 0] <= now)]
        if not self.state.include_open_candle:
            visible = visible[visible[:, 0] + HOUR_MS <= now]
        page = visible[:limit]
        if fault and fault.kind == "short":
            page = page[: fault.rows]
        out = [[int(r[0]), *(repr(float(x)) for x in r[1:6]), int(r[0]) + HOUR_MS - 1,
                "0", 1, "0", "0", "0"] for r in page]
        if fault and fault.kind == "dup":
            out = out + out[: max(1, len(out) // 3)]
        if fault and fault.kind == "shuffle":
            out = out[::-1]
        return out


class LoopbackExchange(LoopbackServer):
    def __init__(self) -> None:
        self.state = ExchangeState()
        super().__init__(type("Handler", (_Handler,), {"state": self.state}))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v3"
