"""A stub OpenAI-compatible LLM for OpenClaw: deterministic replies over SSE, on loopback.

OpenClaw always calls its provider with ``"stream": true``, so ``POST /v1/chat/completions``
answers with ``text/event-stream`` chunks: one role+content delta, a ``finish_reason: stop``
chunk, a usage chunk (prompt 11, completion 7) and ``data: [DONE]``. A request without
``stream`` gets a plain ``chat.completion`` JSON body (handy with curl).

The reply is ``STUB-REPLY #n to: <last user text>`` where ``n`` counts the user messages in
the request (so the second turn of a conversation says ``#2``). OpenClaw's decorations are
stripped: the ``[Sun 2026-11-22 15:11 UTC] `` prefix, the ``\\n\\nRuntime: ...`` suffix and its
extra ``<<<BEGIN_OPENCLAW_INTERNAL...`` user message.

Standalone: ``python -m devstack.stub_llm --port 18080 [--delay 0.5] [--fail-status 500]``.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack import stub_tools
from devstack._proc import LOOPBACK, Managed
from devstack.stub_tools import INTERNAL, ToolScript, text_of

PROMPT_TOKENS = 11
COMPLETION_TOKENS = 7
_STAMP = re.compile(r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [^\]\n]*\] ")
REQUESTS_KEPT = 64  # request bodies kept for tests (each carries a ~40 KB system prompt)


@dataclass
class StubBehaviour:
    """Knobs a test may change while the stub runs.

    ``delay_s`` waits before answering; ``fail_status`` answers with that HTTP status and an
    OpenAI-style error body, for the next ``fail_count`` requests (``None``: all of them);
    ``tool_script`` makes turns that carry its trigger call tools (`devstack/stub_tools.py`).
    """

    delay_s: float = 0.0
    fail_status: int | None = None
    fail_count: int | None = None
    tool_script: ToolScript | None = None


def user_texts(body: dict[str, Any]) -> list[str]:
    """The user turns of a chat request, with OpenClaw's envelope removed."""
    texts = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        text = text_of(message.get("content"))
        if text.startswith(INTERNAL):
            continue
        text = text.split("\n\nRuntime:", 1)[0]
        texts.append(_STAMP.sub("", text, count=1))
    return texts


def reply_text(body: dict[str, Any]) -> str:
    """``STUB-REPLY #n to: <last user text>`` for a chat completions request body."""
    texts = user_texts(body)
    return f"STUB-REPLY #{len(texts)} to: {texts[-1] if texts else ''}"


def _usage() -> dict[str, int]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


class StubLLM(Managed):
    """The stub server, run on a daemon thread; a context manager.

    ``request_count`` counts chat completion requests; ``last_request`` is the latest body;
    ``requests`` keeps the latest bodies (for tests that read the tools offered or the tool
    results OpenClaw sent back); ``behaviour`` holds the delay/failure/tool-script knobs.
    """

    def __init__(self, port: int = 0, *, host: str = LOOPBACK, model: str = "stub-model") -> None:
        self.model = model
        self.behaviour = StubBehaviour()
        self.request_count = 0
        self.last_request: dict[str, Any] | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUESTS_KEPT)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port."""
        port: int = self._server.server_address[1]
        return port

    @property
    def base_url(self) -> str:
        """OpenAI ``baseUrl`` to configure: ``http://127.0.0.1:PORT/v1``."""
        return f"http://{LOOPBACK}:{self.port}/v1"

    def start(self) -> StubLLM:
        """Serve on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, args=(0.05,), name="stub-llm", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        """Serve on the calling thread (standalone use)."""
        self._server.serve_forever()

    def reset(self) -> None:
        """Zero the counter and restore default behaviour."""
        with self._lock:
            self.request_count = 0
            self.last_request = None
            self.requests.clear()
            self.behaviour = StubBehaviour()

    def _admit(self, body: dict[str, Any]) -> tuple[int, float, int | None]:
        """Count a request; return (its number, delay, failure status or None)."""
        with self._lock:
            self.request_count += 1
            self.last_request = body
            self.requests.append(body)
            b = self.behaviour
            status = b.fail_status
            if status is not None and b.fail_count is not None:
                if b.fail_count <= 0:
                    status = None
                else:
                    b.fail_count -= 1
            return self.request_count, b.delay_s, status

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


def _handler_for(stub: StubLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Stay quiet."""

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                data = [{"id": stub.model, "object": "model", "owned_by": "stub"}]
                self._json(200, {"object": "list", "data": data})
            elif self.path == "/healthz":
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._json(404, {"error": {"message": "not found", "type": "not_found"}})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
            except (ValueError, json.JSONDecodeError) as exc:
                self._json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
                return
            number, delay, fail = stub._admit(body)
            stub._pause(delay)
            if fail is not None:
                kind = "authentication_error" if fail == 401 else "server_error"
                self._json(fail, {"error": {"message": f"stub failure {fail}", "type": kind}})
            elif body.get("stream"):
                self._stream(body, number)
            else:
                self._json(200, self._completion(body, number))

        def _base(self, body: dict[str, Any], number: int, obj: str) -> dict[str, Any]:
            return {
                "id": f"chatcmpl-stub-{number}",
                "object": obj,
                "created": int(time.time()),
                "model": body.get("model", stub.model),
            }

        def _delta(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
            """The assistant delta for this request and its finish reason."""
            script = stub.behaviour.tool_script
            if script is not None and stub_tools.applies(body, script):
                step = stub_tools.next_step(body, script)
                if step is not None:
                    return stub_tools.tool_call_delta(*step), "tool_calls"
                text = stub_tools.results_text(body, script)
                return {"role": "assistant", "content": text}, "stop"
            return {"role": "assistant", "content": reply_text(body)}, "stop"

        def _completion(self, body: dict[str, Any], number: int) -> dict[str, Any]:
            message, finish = self._delta(body)
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return {
                **self._base(body, number, "chat.completion"),
                "choices": [choice],
                "usage": _usage(),
            }

        def _stream(self, body: dict[str, Any], number: int) -> None:
            base = self._base(body, number, "chat.completion.chunk")
            delta, finish = self._delta(body)
            chunks: list[dict[str, Any]] = [
                {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]},
                {"choices": [], "usage": _usage()},
            ]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(b"data: " + json.dumps({**base, **chunk}).encode() + b"\n\n")
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main(argv: list[str] | None = None) -> None:
    """Run the stub in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.stub_llm",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=18080, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per request")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every call with it")
    args = parser.parse_args(argv)
    stub = StubLLM(args.port)
    stub.behaviour = StubBehaviour(delay_s=args.delay, fail_status=args.fail_status)
    print(f"stub LLM listening: {stub.base_url}", flush=True)
    try:
        stub.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stub._server.server_close()


if __name__ == "__main__":
    main()
