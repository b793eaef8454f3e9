"""The end users: offers messages on three channels and keeps the ledger of answers.

Each message `n` carries the token `chaos-<n>` in its text, which the stub gateways echo
into the reply, so a reply, a session row or a dead letter is traced back to its message.
Every attempt is recorded: an acknowledgement (HTTP 2xx, SMTP 250) or a refusal (503,
451, a connection refused by a killed ingress, a timeout...). A refused message is offered
again later, the same update / wamid / Message-ID, as Telegram, Meta and mail servers do,
until it is acknowledged or the run gives up on it.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiohttp

from chaos.plan import CHANNELS
from chaos.world import ChaosTenant
from devstack import whatsapp_payloads as wa
from ingress.signatures import TELEGRAM_SECRET_HEADER

#: Requests in flight per channel (a blocked SMTP session must not starve the webhooks).
CONCURRENCY = {"telegram": 32, "whatsapp": 32, "email": 16}
HTTP_TIMEOUT_S = 30.0  # ingress answers 503 after its 10 s broker wait
SMTP_TIMEOUT_S = 60.0  # the SMTP server answers 451 after its 30 s broker wait
RETRY_CAP_S = 8.0


def token(seq: int) -> str:
    return f"chaos-{seq}"


@dataclass(frozen=True)
class Attempt:
    started: float  # wall clock
    ended: float
    outcome: str  # "ack", or why not: "503", "451", "conn", "timeout", "500"...


@dataclass
class Offer:
    seq: int
    tenant: ChaosTenant
    channel: str
    wamid: str = field(default_factory=wa.new_wamid)
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def acked(self) -> Attempt | None:
        return next((a for a in self.attempts if a.outcome == "ack"), None)

    @property
    def text(self) -> str:
        return f"{token(self.seq)} hello from {self.channel} user {self.seq}"


class Load:
    """Offers messages to the ingresses; `offers` is the ledger."""

    def __init__(
        self,
        tenants: list[ChaosTenant],
        ingress_url: str,
        smtp_port: int,
        *,
        give_up_after_s: float,
    ) -> None:
        self.tenants = tenants
        self.ingress_url = ingress_url
        self.smtp_port = smtp_port
        self.give_up_after_s = give_up_after_s
        self.offers: list[Offer] = []
        self._slots = {c: asyncio.Semaphore(n) for c, n in CONCURRENCY.items()}
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None
        # Own threads for SMTP sessions (each blocks up to 30 s while the broker is down):
        # the loop's default executor stays free for the rest of the harness.
        self._mailers = ThreadPoolExecutor(CONCURRENCY["email"], thread_name_prefix="mailer")

    def offer(self, seq: int) -> Offer:
        """Message `seq`: tenants round robin, channels in turn across rounds."""
        n = len(self.tenants)
        tenant = self.tenants[seq % n]
        offer = Offer(seq, tenant, CHANNELS[(seq // n + seq) % len(CHANNELS)])
        self.offers.append(offer)
        return offer

    async def __aenter__(self) -> Load:
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._mailers.shutdown(wait=False, cancel_futures=True)

    def send(self, offer: Offer) -> asyncio.Task[None]:
        """Offer it until acknowledged (in the background)."""
        task = asyncio.create_task(self._deliver(offer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(
        self, first: int, count: int, rate: float, progress: Callable[[int], None]
    ) -> None:
        """Offer `count` messages from `first` at `rate` per second (open loop)."""
        started = time.monotonic()
        for i in range(count):
            due = started + i / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)  # the offered rate's clock, not a wait for a result
            self.send(self.offer(first + i))
            progress(i + 1)

    async def settled(self) -> None:
        """Wait until every offer was acknowledged or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _deliver(self, offer: Offer) -> None:
        first = time.monotonic()
        while True:
            async with self._slots[offer.channel]:
                started = time.time()
                outcome = await self._attempt(offer)
                offer.attempts.append(Attempt(started, time.time(), outcome))
            if outcome == "ack" or time.monotonic() - first > self.give_up_after_s:
                return
            backoff = min(RETRY_CAP_S, 0.5 * 2 ** min(len(offer.attempts), 5))
            await asyncio.sleep(backoff)  # the provider's retry schedule

    async def _attempt(self, offer: Offer) -> str:
        try:
            if offer.channel == "email":
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._mailers, self._mail, offer)
            return await self._webhook(offer)
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, OSError):
            return "conn"

    async def _webhook(self, offer: Offer) -> str:
        assert self._http is not None
        t = offer.tenant
        if offer.channel == "telegram":
            url = f"{self.ingress_url}/webhooks/telegram/{t.bot_id}"
            body = json.dumps(_update(offer.seq, offer.text)).encode()
            headers = {TELEGRAM_SECRET_HEADER: t.secret_token, "Content-Type": "application/json"}
        else:
            url = f"{self.ingress_url}/webhooks/whatsapp"
            sender = str(16_500_000_000 + offer.seq)
            raw = wa.text_message(t.phone_number_id, sender, offer.text, wamid=offer.wamid)
            body = wa.encode(raw)
            headers = {wa.SIGNATURE_HEADER: wa.sign(body, t.app_secret)}
            headers["Content-Type"] = "application/json"
        async with self._http.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return "ack" if 200 <= resp.status < 300 else str(resp.status)

    def _mail(self, offer: Offer) -> str:
        msg = EmailMessage()
        msg["From"] = f"user{offer.seq}@customer.test"
        msg["To"] = offer.tenant.address
        msg["Subject"] = token(offer.seq)
        msg["Message-ID"] = f"<{token(offer.seq)}@customer.test>"
        msg.set_content(offer.text)
        try:
            with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=SMTP_TIMEOUT_S) as smtp:
                refused = smtp.send_message(msg)
        except smtplib.SMTPResponseException as err:
            return str(err.smtp_code)
        except smtplib.SMTPRecipientsRefused as err:
            return str(next(iter(err.recipients.values()))[0])
        except smtplib.SMTPException:
            return "conn"
        return "ack" if not refused else "refused"


def _update(seq: int, text: str) -> dict[str, object]:
    """A Telegram update from a new private chat per message (its own conversation)."""
    chat = 100_000 + seq
    return {
        "update_id": seq + 1,
        "message": {
            "message_id": seq + 1,
            "date": int(time.time()),
            "text": text,
            "from": {"id": chat, "is_bot": False, "first_name": "U"},
            "chat": {"id": chat, "type": "private", "first_name": "U"},
        },
    }
