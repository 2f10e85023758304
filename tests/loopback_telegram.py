"""A loopback HTTP server that speaks the Telegram Bot API (getMe, sendMessage, sendPhoto), recording
every request; faults are queued per test (429 with retry_after, 500, 401). Only 127.0.0.1 is bound."""
from __future__ import annotations

import json
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from tests.loopback_server import LoopbackServer


class BotApiState:
    def __init__(self, token: str):
        self.token = token
        self.requests: list[dict] = []  # {"method", "fields", "files"}
        self.faults: deque = deque()  # "429", "500", "401"
        self.method_faults: dict[str, deque] = {}  # faults for one method only, e.g. {"sendPhoto": deque(["500"])}


def _parse_body(content_type: str, body: bytes) -> tuple[dict, dict]:
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        fields, files = {}, {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if part.get_filename():
                files[name] = payload
            else:
                fields[name] = payload.decode()
        return fields, files
    if content_type.startswith("application/json"):
        return json.loads(body or b"{}"), {}
    return {k: v[0] for k, v in parse_qs(body.decode()).items()}, {}


class _Handler(BaseHTTPRequestHandler):
    state: BotApiState

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        prefix = f"/bot{self.state.token}/"
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self.path.startswith(prefix):
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        method = self.path[len(prefix):]
        fields, files = _parse_body(self.headers.get("Content-Type", ""), body)
        only_here = self.state.method_faults.get(method)
        if only_here or (method != "getMe" and self.state.faults):
            fault = only_here.popleft() if only_here else self.state.faults.popleft()
            if fault == "429":
                return self._reply(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                                         "description": "Too Many Requests: retry after 1"})
            if fault == "500":
                return self._reply(500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})
            if fault == "401":
                return self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            if fault == "400":
                return self._reply(400, {"ok": False, "error_code": 400,
                                         "description": "Bad Request: can't parse entities"})
        self.state.requests.append({"method": method, "fields": fields, "files": files})
        if method == "getMe":
            return self._reply(200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Loopback",
                                                            "username": "loopback_bot"}})
        chat = {"id": int(fields.get("chat_id", 0)), "type": "private"}
        message = {"message_id": len(self.state.requests), "date": 1700000000, "chat": chat}
        if method == "sendMessage":
            message["text"] = fields.get("text", "")
        return self._reply(200, {"ok": True, "result": message})


class LoopbackBotApi(LoopbackServer):
    def __init__(self, token: str) -> None:
        self.state = BotApiState(token)
        super().__init__(type("Handler", (_Handler,), {"state": self.state}))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def sent(self, method: str) -> list[dict]:
        return [r for r in self.state.requests if r["method"] == method]
