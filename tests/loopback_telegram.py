"""A loopback HTTP server that speaks the Telegram Bot API (getMe, sendMessage, sendPhoto, and for commands:
getUpdates with long polling, deleteWebhook, editMessageText, answerCallbackQuery), recording every request;
faults are queued per test (429 with retry_after, 500, 401); updates (a user's command, a button press) are
queued by the test. Only 127.0.0.1 is bound."""
from __future__ import annotations

import json
import threading
import time
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
        self.updates: list[dict] = []  # every update queued, update_id = index + 1
        self.new_update = threading.Condition()
        self.down = False  # every method answers 502 while set (the Bot API unreachable)
        self.last_edit: dict[int, str] = {}  # message id -> its text after the last edit


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
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # a long poll its client gave up (the bot stopping)
            pass

    def do_POST(self) -> None:  # noqa: N802
        prefix = f"/bot{self.state.token}/"
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if not self.path.startswith(prefix):
            return self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        method = self.path[len(prefix):]
        fields, files = _parse_body(self.headers.get("Content-Type", ""), body)
        if self.state.down:
            return self._reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"})
        if method == "getUpdates":
            return self._reply(200, {"ok": True, "result": self._updates(fields)})
        if method in ("deleteWebhook", "answerCallbackQuery"):
            self.state.requests.append({"method": method, "fields": fields, "files": files,
                                        "time": time.monotonic()})
            return self._reply(200, {"ok": True, "result": True})
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
        self.state.requests.append({"method": method, "fields": fields, "files": files, "time": time.monotonic()})
        if method == "getMe":
            return self._reply(200, {"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Loopback",
                                                            "username": "loopback_bot"}})
        chat = {"id": int(fields.get("chat_id", 0)), "type": "private"}
        message = {"message_id": len(self.state.requests), "date": 1700000000, "chat": chat}
        if method in ("sendMessage", "editMessageText"):
            message["text"] = fields.get("text", "")
        if method == "editMessageText":
            message["message_id"] = int(fields.get("message_id", 0))
            if fields.get("text") == self.state.last_edit.get(message["message_id"]):
                return self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message is "
                                         "not modified: specified new message content and reply markup are "
                                         "exactly the same as a current content and reply markup of the message"})
            self.state.last_edit[message["message_id"]] = fields.get("text")
        return self._reply(200, {"ok": True, "result": message})

    def _updates(self, fields: dict) -> list[dict]:
        """Updates from `offset` on, waiting up to `timeout` seconds for one (long polling)."""
        offset, timeout = int(fields.get("offset") or 0), float(fields.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 5)  # shorter than asked: a test's stop is not held up
        with self.state.new_update:
            while True:
                ready = [u for u in self.state.updates if u["update_id"] >= offset]
                if ready or time.monotonic() >= deadline:
                    return ready
                self.state.new_update.wait(timeout=max(0.0, deadline - time.monotonic()))


class LoopbackBotApi(LoopbackServer):
    def __init__(self, token: str) -> None:
        self.state = BotApiState(token)
        super().__init__(type("Handler", (_Handler,), {"state": self.state}))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    def sent(self, method: str) -> list[dict]:
        return [r for r in self.state.requests if r["method"] == method]

    def _push(self, update: dict) -> None:
        with self.state.new_update:
            update["update_id"] = len(self.state.updates) + 1
            self.state.updates.append(update)
            self.state.new_update.notify_all()

    def command(self, text: str, chat_id: int = 777, user_id: int = 777, chat_type: str = "private",
                age_s: float = 0) -> None:
        """A user sends `text` (e.g. "/now btc") in a chat, `age_s` seconds ago."""
        chat = {"id": chat_id, "type": chat_type, **({"title": "traders"} if chat_type != "private" else {})}
        self._push({"message": {"message_id": 10_000 + len(self.state.updates), "date": int(time.time() - age_s),
                                "chat": chat, "from": {"id": user_id, "is_bot": False, "first_name": "Trader"},
                                "text": text, "entities": [{"type": "bot_command", "offset": 0,
                                                            "length": len(text.split()[0])}]}})

    def press(self, data: str, message_id: int, chat_id: int = 777, user_id: int = 777,
              message_age_s: float = 0) -> None:
        """A user presses an inline button (callback data `data`) under the bot's message `message_id`, sent
        `message_age_s` seconds ago."""
        self._push({"callback_query": {
            "id": str(len(self.state.updates) + 1), "chat_instance": "1", "data": data,
            "from": {"id": user_id, "is_bot": False, "first_name": "Trader"},
            "message": {"message_id": message_id, "date": int(time.time() - message_age_s),
                        "chat": {"id": chat_id, "type": "private"},
                        "from": {"id": 1, "is_bot": True, "first_name": "Loopback"}, "text": "..."}}})

    def named_chats(self) -> set[str]:
        """Every chat id any request to the Bot API named."""
        return {str(r["fields"].get("chat_id")) for r in self.state.requests if "chat_id" in r["fields"]}
