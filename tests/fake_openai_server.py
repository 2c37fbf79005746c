"""A small OpenAI-compatible server for tests, answering as vLLM does (shapes read from vLLM's source).

- `GET /v1/models`: the base model and its LoRA adapters (an adapter's entry has `parent` and `root`);
- `POST /v1/chat/completions`, streamed as server-sent events word by word, then a chunk with `finish_reason`,
  then (with `stream_options.include_usage`) a chunk with no choices and the `usage`, then `[DONE]`. The answer is
  `[<model asked for>]` followed by the words of the last user message, so a test sees which model answered and
  what it was sent; a token is a word. An unknown model gets vLLM's 404 error JSON;
- `POST /v1/load_lora_adapter` and `/v1/unload_lora_adapter` (404 `{"detail": "Not Found"}` when `runtime_lora`
  is off, as when vLLM runs without VLLM_ALLOW_RUNTIME_LORA_UPDATING);
- `GET /version` at the root.

It records every chat request, how many were in flight at once, and the streams the client closed early.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "0.9.9-fake"


@dataclass
class ChatRecord:
    """One chat completion request and what the server did with it."""

    body: dict[str, Any]
    authorization: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sent_words: int = 0
    planned_words: int = 0
    aborted: bool = False
    finished: bool = False

    @property
    def model(self) -> str:
        return self.body.get("model", "")

    @property
    def last_user(self) -> str:
        users = [m["content"] for m in self.body.get("messages", []) if m.get("role") == "user"]
        return users[-1] if users else ""


@dataclass
class FakeOpenAIServer:
    base: str = "fake-org/base-model"
    adapters: dict[str, str] = field(default_factory=lambda: {"support-lora": "/srv/adapters/support-lora"})
    word_delay_s: float = 0.01
    usage: bool = True  # send the usage chunk when asked for it
    runtime_lora: bool = True  # /v1/load_lora_adapter exists
    owned_by: str = "vllm"
    records: list[ChatRecord] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> FakeOpenAIServer:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.max_in_flight = self.in_flight

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not self.in_flight, "requests still in flight"

    def cards(self) -> list[dict[str, Any]]:
        created = 1_700_000_000
        base = {"id": self.base, "object": "model", "created": created, "owned_by": self.owned_by, "root": self.base}
        base.update(parent=None, max_model_len=2048, permission=[{"object": "model_permission"}])
        loras = [
            {"id": name, "object": "model", "created": created, "owned_by": self.owned_by, "root": root}
            | {"parent": self.base, "max_model_len": None, "permission": []}
            for name, root in self.adapters.items()
        ]
        return [base, *loras]

    def reply_words(self, model: str, messages: list[dict[str, str]]) -> list[str]:
        users = [m.get("content", "") for m in messages if m.get("role") == "user"]
        return [f"[{model}]", *(users[-1].split() if users else [])]


def _error(message: str, kind: str, code: int, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}
    return {**chunk, "choices": choices, **extra}


def _handler(fake: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _text(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self._json(200, {"object": "list", "data": fake.cards()})
            elif self.path == "/version":
                self._json(200, {"version": VERSION})
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter") and not fake.runtime_lora:
                self._json(404, {"detail": "Not Found"})
            elif self.path == "/v1/load_lora_adapter":
                name = body.get("lora_name", "")
                if name in fake.adapters:
                    message = f"The lora adapter '{name}' has already been loaded."
                    self._json(400, _error(message, "InvalidUserInput", 400))
                else:
                    fake.adapters[name] = body.get("lora_path", "")
                    self._text(200, f"Success: LoRA adapter '{name}' added successfully.")
            elif self.path == "/v1/unload_lora_adapter":
                name = body.get("lora_name", "")
                if fake.adapters.pop(name, None) is None:
                    self._json(404, _error(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404))
                else:
                    self._text(200, f"Success: LoRA adapter '{name}' removed successfully.")
            else:
                self._json(404, {"detail": "Not Found"})

        def _chat(self, body: dict[str, Any]) -> None:
            record = ChatRecord(body, self.headers.get("Authorization", ""))
            with fake.lock:
                fake.records.append(record)
            model = body.get("model", "")
            if model != fake.base and model not in fake.adapters:
                self._json(404, _error(f"The model `{model}` does not exist.", "NotFoundError", 404, "model"))
                return
            messages = body.get("messages", [])
            words = fake.reply_words(model, messages)
            limit = int(body.get("max_tokens") or 16)
            finish = "length" if len(words) > limit else "stop"
            words = words[:limit]
            record.planned_words = len(words)
            record.prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            with fake.lock:
                fake.in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self._event(model, {"role": "assistant", "content": ""}, None)
                for index, word in enumerate(words):
                    time.sleep(fake.word_delay_s)
                    self._event(model, {"content": word if index == 0 else " " + word}, None)
                    record.sent_words += 1
                self._event(model, {}, finish)
                record.completion_tokens = record.sent_words
                if fake.usage and (body.get("stream_options") or {}).get("include_usage"):
                    usage = {
                        "prompt_tokens": record.prompt_tokens,
                        "completion_tokens": record.completion_tokens,
                        "total_tokens": record.prompt_tokens + record.completion_tokens,
                    }
                    self._send(_chunk(model, [], usage=usage))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                record.finished = True
            except (BrokenPipeError, ConnectionResetError):  # the client closed its stream
                record.aborted = True
            finally:
                with fake.lock:
                    fake.in_flight -= 1

        def _event(self, model: str, delta: dict[str, Any], finish: str | None) -> None:
            self._send(_chunk(model, [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]))

        def _send(self, data: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
            self.wfile.flush()

    return Handler
