"""A local stand-in for the Telegram Bot API (api.telegram.org is unreachable here).

Speaks the contract of https://core.telegram.org/bots/api for the methods the platform
uses: `POST|GET /bot<token>/<method>` with JSON, form or query parameters, answering
`{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …}`.
Methods: sendMessage, sendChatAction, setWebhook, deleteWebhook, getMe, getWebhookInfo.

For tests: every accepted call is recorded in `calls` (refused ones in `failures`);
`await api.wait_for(predicate, timeout)` wakes on each new call (no polling);
`fail_next(n, status=429, retry_after=…)` / `block_chat(chat_id)` inject faults.

Standalone (`make run`): `python -m devstack.telegram_api --port 8081` accepts any token
and prints each sendMessage so a person sees the agent's replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from devstack.standin import StandIn, cli_parser, serve_until_signalled

MAX_TEXT = 4096
_METHODS = {  # Bot API method names are case-insensitive
    m.lower(): m
    for m in (
        "sendMessage",
        "sendChatAction",
        "setWebhook",
        "deleteWebhook",
        "getMe",
        "getWebhookInfo",
    )
}


@dataclass(frozen=True)
class ApiCall:
    """One call as the stand-in saw it (`status` 200 for accepted calls)."""

    bot_id: int
    method: str
    params: dict[str, Any]
    status: int = 200
    result: Any = None
    at: float = field(default_factory=time.time)

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id", ""))

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))


@dataclass
class _Fault:
    remaining: int
    status: int
    method: str | None
    retry_after: int | None
    description: str


class _ApiError(Exception):
    def __init__(self, status: int, description: str, **parameters: Any) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


class TelegramApiStandIn(StandIn[ApiCall]):
    """An aiohttp server answering like the Bot API; start it, point TELEGRAM_API_BASE at it."""

    api_name: ClassVar[str] = "Telegram"

    def __init__(
        self,
        *,
        accept_any_token: bool = False,
        on_call: Callable[[ApiCall], None] | None = None,
    ) -> None:
        super().__init__(accept_any_token=accept_any_token, on_call=on_call)
        self._bots: dict[str, int] = {}
        self._webhooks: dict[int, dict[str, Any]] = {}
        self._next_message_id: dict[int, int] = {}
        self._blocked: dict[str, str] = {}
        self._faults: list[_Fault] = []

    # -- set-up -----------------------------------------------------------------------

    def register_bot(self, token: str) -> int:
        """Accept `token` (form `<bot_id>:<secret>`); returns the bot id."""
        bot_id = _bot_id(token)
        self._bots[token] = bot_id
        return bot_id

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = None,
        method: str | None = "sendMessage",
        description: str | None = None,
    ) -> None:
        """Answer the next `count` calls of `method` (None: any method) with `status`."""
        if status == 429 and retry_after is None:
            retry_after = 1
        default = {
            429: f"Too Many Requests: retry after {retry_after}",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(status, f"Error {status}")
        name = _METHODS.get(method.lower(), method) if method else None
        self._faults.append(_Fault(count, status, name, retry_after, description or default))

    def block_chat(
        self, chat_id: str | int, description: str = "Forbidden: bot was blocked by the user"
    ) -> None:
        """sendMessage to `chat_id` answers 403 from now on."""
        self._blocked[str(chat_id)] = description

    def webhook(self, token: str) -> dict[str, Any]:
        """The webhook set for `token` (empty dict if none)."""
        return dict(self._webhooks.get(_bot_id(token), {}))

    def messages(self, chat_id: str | int | None = None) -> list[ApiCall]:
        """Accepted sendMessage calls, optionally for one chat."""
        return [
            c
            for c in self.calls
            if c.method == "sendMessage" and (chat_id is None or c.chat_id == str(chat_id))
        ]

    def _summary(self, call: ApiCall) -> tuple[Any, ...]:
        return (call.method, call.chat_id)

    # -- server -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        raw_method = request.match_info["method"]
        method = _METHODS.get(raw_method.lower(), raw_method)
        bot_id = self._bots.get(token)
        if bot_id is None and self.accept_any_token and ":" in token:
            bot_id = self.register_bot(token)
        if bot_id is None:
            return _error(401, "Unauthorized")
        params: dict[str, Any] = {}
        try:
            params = await _params(request)
            self._inject_fault(method)
            result = self._dispatch(bot_id, method, params)
        except _ApiError as err:
            await self._record(ApiCall(bot_id, method, params, err.status), failed=True)
            return _error(err.status, err.description, **err.parameters)
        await self._record(ApiCall(bot_id, method, params, 200, result), failed=False)
        return web.json_response({"ok": True, "result": result})

    def _inject_fault(self, method: str) -> None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.method in (None, method):
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
                extra = {} if fault.retry_after is None else {"retry_after": fault.retry_after}
                raise _ApiError(fault.status, fault.description, **extra)

    # -- methods ----------------------------------------------------------------------

    def _dispatch(self, bot_id: int, method: str, params: dict[str, Any]) -> Any:
        if method not in _METHODS.values():
            raise _ApiError(404, "Not Found: method not found")
        if method == "getMe":
            return {
                "id": bot_id,
                "is_bot": True,
                "first_name": f"Bot {bot_id}",
                "username": f"bot{bot_id}_bot",
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        if method == "setWebhook":
            url = str(params.get("url", ""))
            self._webhooks[bot_id] = {k: v for k, v in params.items() if k != "url"} | {"url": url}
            return True
        if method == "deleteWebhook":
            self._webhooks.pop(bot_id, None)
            return True
        if method == "getWebhookInfo":
            hook = self._webhooks.get(bot_id, {})
            info = {"url": hook.get("url", ""), "has_custom_certificate": False}
            return info | {"pending_update_count": 0, "max_connections": 40}
        chat_id = _chat_id(params)
        if method == "sendChatAction":
            if not params.get("action"):
                raise _ApiError(400, "Bad Request: action is empty")
            return True
        return self._send_message(bot_id, chat_id, params)

    def _send_message(self, bot_id: int, chat_id: int | str, params: dict[str, Any]) -> Any:
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            raise _ApiError(400, "Bad Request: message is too long")
        if str(chat_id) in self._blocked:
            raise _ApiError(403, self._blocked[str(chat_id)])
        thread = str(params.get("message_thread_id") or "")
        if thread and not thread.isdigit():
            raise _ApiError(400, "Bad Request: message thread not found")
        message_id = self._next_message_id.get(bot_id, 0) + 1
        self._next_message_id[bot_id] = message_id
        result: dict[str, Any] = {
            "message_id": message_id,
            "from": {"id": bot_id, "is_bot": True, "first_name": f"Bot {bot_id}"},
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": text,
        }
        if thread:
            result["message_thread_id"] = int(thread)
        return result


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise _ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "Bad Request: can't parse JSON object")
        params.update(body)
    else:
        form = await request.post()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _chat_id(params: dict[str, Any]) -> int | str:
    raw = params.get("chat_id")
    if raw is None or str(raw).strip() == "":
        raise _ApiError(400, "Bad Request: chat_id is empty")
    text = str(raw).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def _bot_id(token: str) -> int:
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else abs(hash(token)) % 10**10


def _error(status: int, description: str, **parameters: Any) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


def _print_message(call: ApiCall) -> None:
    if call.method == "sendMessage":
        print(f"[telegram] bot {call.bot_id} → chat {call.chat_id}: {call.text}", flush=True)


async def _serve(host: str, port: int, tokens: list[str]) -> None:
    api = TelegramApiStandIn(accept_any_token=not tokens, on_call=_print_message)
    for token in tokens:
        api.register_bot(token)
    await serve_until_signalled(api, host, port, "Telegram Bot API stand-in")


def main(argv: list[str] | None = None) -> None:
    parser = cli_parser(__doc__, port=8081)
    parser.add_argument(
        "--token", action="append", default=[], help="accept only these bot tokens (repeatable)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
