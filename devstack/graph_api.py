"""A local stand-in for the WhatsApp Cloud API (graph.facebook.com is unreachable here).

Speaks the contract of research/protocols.md §2: `POST /{version}/{phone_number_id}/messages`
with `Authorization: Bearer <access token>` and a JSON body; success is
`{"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid..."}]}`,
failure a Graph error `{"error": {"message", "type", "code", "error_data", "fbtrace_id"}}`:

- wrong or missing token: 401, code 190; unknown phone_number_id: 400, code 100 subcode 33;
- bad body (not whatsapp, no `to`, text over 4096 characters...): 400, code 100;
- a text to a user whose 24-hour window is closed (`close_window`): 400, code 131047;
- a template that was not registered: 404, code 132001; wrong parameter count: 400, 132000;
  a parameter with newlines, tabs or 5+ spaces: 400, 132018;
- injected faults (`fail_next(code=130429 | 131056 | 80007 | 4 | 131000 | ...)`).

For tests: accepted sends are recorded in `calls`, refused ones in `failures`;
`await api.wait_for(predicate, timeout)` wakes on each new call (no polling). A number
registered with an `app_secret` and a `webhook_url` gets signed `statuses` notifications
(sent, delivered, read by default) POSTed back for every accepted message, like Meta.

Standalone (`make run`): `python -m devstack.graph_api --port 8082 --number ID:TOKEN:SECRET
--webhook-url URL` prints each message; `POST /_simulate/inbound` with
`{"phone_number_id", "from", "text"}` sends a signed text-message webhook, as if a user wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from devstack import whatsapp_payloads as wa
from devstack.graph_errors import GraphError, graph_error
from devstack.standin import StandIn, cli_parser, serve_until_signalled

MAX_TEXT = 4096
_VERSION = re.compile(r"v\d+\.\d+")
_TEMPLATE_PARAM_BAD = re.compile(r"[\n\t]| {5,}")


@dataclass(frozen=True)
class GraphCall:
    """One send as the stand-in saw it (`status` 200 for accepted ones)."""

    phone_number_id: str
    body: dict[str, Any]
    status: int = 200
    wamid: str | None = None
    error_code: int | None = None
    at: float = field(default_factory=time.time)

    @property
    def to(self) -> str:
        return str(self.body.get("to", ""))

    @property
    def type(self) -> str:
        return str(self.body.get("type", "text"))

    @property
    def text(self) -> str:
        text = self.body.get("text")
        return str(text.get("body", "")) if isinstance(text, dict) else ""


@dataclass
class Number:
    phone_number_id: str
    access_token: str
    app_secret: str | None = None
    webhook_url: str | None = None
    statuses: tuple[str, ...] = ("sent", "delivered", "read")
    display_phone_number: str = "15550783881"


@dataclass
class _Fault:
    skip: int
    remaining: int
    code: int
    http_status: int | None
    phone_number_id: str | None


class GraphApiStandIn(StandIn[GraphCall]):
    """An aiohttp server answering like the Graph API; point WHATSAPP_GRAPH_BASE at it."""

    api_name: ClassVar[str] = "Graph API"

    def __init__(
        self,
        *,
        accept_any_token: bool = False,
        on_call: Callable[[GraphCall], None] | None = None,
    ) -> None:
        super().__init__(accept_any_token=accept_any_token, on_call=on_call)
        self.webhook_posts: list[tuple[str, int]] = []  # (status or inbound, HTTP status)
        self._numbers: dict[str, Number] = {}
        self._templates: dict[tuple[str, str], int] = {}
        self._closed: set[tuple[str, str]] = set()
        self._faults: list[_Fault] = []
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- set-up -----------------------------------------------------------------------

    def register_number(
        self,
        phone_number_id: str,
        access_token: str,
        *,
        app_secret: str | None = None,
        webhook_url: str | None = None,
        statuses: tuple[str, ...] = ("sent", "delivered", "read"),
    ) -> Number:
        """Accept sends from `phone_number_id` with `access_token`; webhooks if both given."""
        number = Number(phone_number_id, access_token, app_secret, webhook_url, statuses)
        self._numbers[phone_number_id] = number
        return number

    def register_template(self, name: str, language: str = "en_US", params: int = 1) -> None:
        """An approved template with `params` body parameters ({{1}}...)."""
        self._templates[(name, language)] = params

    def close_window(self, phone_number_id: str, wa_id: str) -> None:
        """From now on a non-template send to `wa_id` fails with 131047 (24 h passed)."""
        self._closed.add((phone_number_id, wa_id))

    def open_window(self, phone_number_id: str, wa_id: str) -> None:
        self._closed.discard((phone_number_id, wa_id))

    def fail_next(
        self,
        count: int = 1,
        *,
        code: int = 130429,
        http_status: int | None = None,
        phone_number_id: str | None = None,
        after: int = 0,
    ) -> None:
        """Answer `count` sends (of one number, or any), after `after` good ones, with `code`."""
        self._faults.append(_Fault(after, count, code, http_status, phone_number_id))

    def messages(
        self, phone_number_id: str | None = None, to: str | None = None
    ) -> list[GraphCall]:
        """Accepted message sends (not mark-as-read), optionally for one number or user."""
        return [
            c
            for c in self.calls
            if c.wamid
            and (phone_number_id is None or c.phone_number_id == phone_number_id)
            and (to is None or c.to == to)
        ]

    def _summary(self, call: GraphCall) -> tuple[Any, ...]:
        return (call.phone_number_id, call.to, call.type)

    # -- server -----------------------------------------------------------------------

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{version}/{phone_number_id}/messages", self._handle)
        app.router.add_post("/_simulate/inbound", self._simulate_inbound)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on `host:port` (0: any free port); returns the base URL."""
        self._http = aiohttp.ClientSession()  # for the webhooks back to the platform
        return await super().start(host, port)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _handle(self, request: web.Request) -> web.Response:
        pnid = request.match_info["phone_number_id"]
        body: dict[str, Any] = {}
        try:
            if not _VERSION.fullmatch(request.match_info["version"]):
                raise GraphError(400, 100, "Unknown path components", "OAuthException")
            number = self._authorise(pnid, request.headers.get("Authorization", ""))
            body = await _json(request)
            self._inject_fault(pnid)
            result, wamid = self._dispatch(number, body)
        except GraphError as err:
            await self._record(GraphCall(pnid, body, err.status, None, err.code), failed=True)
            return graph_error(err)
        call = GraphCall(pnid, body, 200, wamid)
        await self._record(call, failed=False)
        if wamid:
            self._spawn(self._emit_statuses(number, call))
        return web.json_response(result)

    def _authorise(self, pnid: str, header: str) -> Number:
        scheme, _, token = header.partition(" ")
        number = self._numbers.get(pnid)
        if number is None and self.accept_any_token and scheme == "Bearer" and token:
            number = self.register_number(pnid, token)
        if scheme != "Bearer" or not token or (number and token != number.access_token):
            raise GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token")
        if number is None:
            raise GraphError(
                400,
                100,
                f"Unsupported post request. Object with ID '{pnid}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation.",
                "GraphMethodException",
                subcode=33,
            )
        return number

    def _inject_fault(self, pnid: str) -> None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.phone_number_id in (None, pnid):
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
                raise GraphError.for_code(fault.code, fault.http_status)

    # -- the messages endpoint ----------------------------------------------------------

    def _dispatch(self, number: Number, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if body.get("messaging_product") != "whatsapp":
            raise GraphError.param("The parameter messaging_product is required.")
        if body.get("status") == "read":  # mark as read (+ typing indicator)
            if not str(body.get("message_id", "")).startswith("wamid."):
                raise GraphError.param("Invalid parameter message_id")
            return {"success": True}, ""
        to = str(body.get("to", "")).lstrip("+")
        if not to.isdigit():
            raise GraphError.param("The parameter to is required.")
        kind = body.get("type", "text")
        if kind == "text":
            if (number.phone_number_id, to) in self._closed:
                raise GraphError.for_code(131047)
            text = body.get("text")
            text_body = text.get("body") if isinstance(text, dict) else None
            if not isinstance(text_body, str) or not text_body.strip():
                raise GraphError.param("The parameter text['body'] is required.")
            if len(text_body) > MAX_TEXT:
                raise GraphError.param("Param text['body'] must be at most 4096 characters long.")
        elif kind == "template":
            self._check_template(body.get("template"))
        else:
            raise GraphError.param(f"Param type '{kind}' is not supported by this stand-in.")
        wamid = wa.new_wamid()
        message: dict[str, Any] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        result = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": str(body["to"]), "wa_id": to}],
            "messages": [message],
        }
        return result, wamid

    def _check_template(self, template: Any) -> None:
        if not isinstance(template, dict) or not isinstance(template.get("name"), str):
            raise GraphError.param("The parameter template['name'] is required.")
        language = template.get("language")
        code = language.get("code") if isinstance(language, dict) else None
        expected = self._templates.get((template["name"], str(code)))
        if expected is None:
            raise GraphError.for_code(132001)
        params = [
            p
            for c in template.get("components") or []
            if isinstance(c, dict) and c.get("type") == "body"
            for p in c.get("parameters") or []
        ]
        if len(params) != expected:
            raise GraphError.for_code(132000)
        for p in params:
            if not isinstance(p, dict) or _TEMPLATE_PARAM_BAD.search(str(p.get("text", ""))):
                raise GraphError.for_code(132018)

    # -- webhooks back to the platform --------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _emit_statuses(self, number: Number, call: GraphCall) -> None:
        if not (number.app_secret and number.webhook_url and call.wamid):
            return
        for status in number.statuses:
            payload = wa.status_update(number.phone_number_id, call.wamid, status, call.to)
            await self._post_webhook(number, payload, status)

    async def _post_webhook(self, number: Number, payload: dict[str, Any], what: str) -> int:
        assert number.app_secret and number.webhook_url and self._http is not None
        raw = wa.encode(payload)
        headers = {
            "Content-Type": "application/json",
            wa.SIGNATURE_HEADER: wa.sign(raw, number.app_secret),
        }
        try:
            async with self._http.post(number.webhook_url, data=raw, headers=headers) as resp:
                status = resp.status
        except aiohttp.ClientError:
            status = 0
        self.webhook_posts.append((what, status))
        return status

    async def send_inbound(self, phone_number_id: str, payload: dict[str, Any]) -> int:
        """POST `payload` (signed) to the number's webhook as Meta would; opens the window."""
        number = self._numbers[phone_number_id]
        for change in payload["entry"][0]["changes"]:
            for msg in change["value"].get("messages", []):
                self.open_window(phone_number_id, str(msg.get("from", "")))
        return await self._post_webhook(number, payload, "inbound")

    async def _simulate_inbound(self, request: web.Request) -> web.Response:
        params = await _json(request)
        pnid = str(params.get("phone_number_id") or next(iter(self._numbers), ""))
        if pnid not in self._numbers or not self._numbers[pnid].webhook_url:
            return web.json_response({"error": "unknown number or no webhook"}, status=404)
        payload = wa.text_message(pnid, str(params.get("from", "16505551234")), str(params["text"]))
        status = await self.send_inbound(pnid, payload)
        wamid = payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        return web.json_response({"wamid": wamid, "webhook_status": status})


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise GraphError.param("Invalid JSON") from None
    if not isinstance(body, dict):
        raise GraphError.param("Invalid JSON")
    return body


def _print_call(call: GraphCall) -> None:
    if call.wamid:
        shown = call.text or f"[template {call.body.get('template', {}).get('name')}]"
        print(f"[whatsapp] {call.phone_number_id} → {call.to}: {shown}", flush=True)


async def _serve(host: str, port: int, numbers: list[str], webhook_url: str | None) -> None:
    api = GraphApiStandIn(accept_any_token=not numbers, on_call=_print_call)
    for spec in numbers:
        pnid, token, app_secret = spec.split(":", 2)
        api.register_number(pnid, token, app_secret=app_secret, webhook_url=webhook_url)
    api.register_template("reply_later", "en_US", params=1)
    await serve_until_signalled(api, host, port, "WhatsApp Graph API stand-in")


def main(argv: list[str] | None = None) -> None:
    parser = cli_parser(__doc__, port=8082)
    parser.add_argument(
        "--number",
        action="append",
        default=[],
        help="PHONE_NUMBER_ID:ACCESS_TOKEN:APP_SECRET to accept (repeatable; none: any)",
    )
    parser.add_argument("--webhook-url", help="where statuses and simulated messages go")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.number, args.webhook_url))


if __name__ == "__main__":
    main()
