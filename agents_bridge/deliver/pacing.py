"""Outbound pacing for a channel API: a token bucket per chat and one per bot.

Telegram's Bot FAQ: avoid more than one message per second in a chat (short bursts are
tolerated, then 429), at most 20 messages per minute in a group, about 30 messages per
second per bot in bulk. `Pacer.wait(bot_id, chat_id)` returns when one more message may
go out: first the chat's bucket, then the bot's. A caller waiting for its chat holds no
slot of the bot's bucket, so a busy chat never delays the other chats of that bot.

Buckets are GCRA (a token bucket kept as one "theoretical arrival time"): `burst`
messages at once, then one every `1 / rate` seconds. Reservations are taken in call
order, so waiters of one bucket go out first come, first served. The limits are per
process: several delivery processes of one bot each get the full budget (Telegram's
429 `retry_after` still protects the bot).

Time comes from a `Clock` (`monotonic`, `sleep`), so tests drive it by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.retry import Clock, SystemClock

_PRUNE_AT = 10_000  # per-chat buckets kept before idle ones are forgotten


class Bucket:
    """A GCRA token bucket: `burst` at once, then `rate` per second."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.interval = 1.0 / rate
        self._tolerance = (burst - 1) * self.interval
        self._tat = -math.inf  # theoretical arrival time of the next conforming message

    def reserve(self, now: float) -> float:
        """Take the next slot; returns the time (on the caller's clock) it starts."""
        start = max(now, self._tat - self._tolerance)
        self._tat = max(self._tat, start) + self.interval
        return start

    def idle(self, now: float) -> bool:
        """True when the bucket is full again (forgetting it changes nothing)."""
        return self._tat <= now


@dataclass(frozen=True)
class PacingPolicy:
    """Telegram's published limits; `group_*` applies to chats whose id is not positive."""

    chat_rate: float = 1.0
    chat_burst: int = 1
    group_rate: float = 20 / 60
    group_burst: int = 1
    bot_rate: float = 30.0
    bot_burst: int = 30


def is_group(chat_id: str) -> bool:
    """Telegram: users have positive ids; groups, supergroups, channels negative (or @name)."""
    return not chat_id.isdigit()


class Pacer:
    """Per-chat and per-bot buckets for one channel, created on first use."""

    def __init__(self, policy: PacingPolicy | None = None, *, clock: Clock | None = None) -> None:
        self.policy = policy or PacingPolicy()
        self._clock = clock or SystemClock()
        self._chats: dict[tuple[str, str], Bucket] = {}
        self._bots: dict[str, Bucket] = {}
        self._prune_at = _PRUNE_AT

    async def wait(self, bot_id: str, chat_id: str) -> float:
        """Wait until `bot_id` may send one message to `chat_id`; returns seconds waited."""
        began = self._clock.monotonic()
        await self._sleep_until(self._chat(bot_id, chat_id).reserve(began))
        await self._sleep_until(self._bot(bot_id).reserve(self._clock.monotonic()))
        return self._clock.monotonic() - began

    async def _sleep_until(self, start: float) -> None:
        delay = start - self._clock.monotonic()
        if delay > 0:
            await self._clock.sleep(delay)

    def _chat(self, bot_id: str, chat_id: str) -> Bucket:
        key = (bot_id, chat_id)
        bucket = self._chats.get(key)
        if bucket is None:
            self._prune()
            p = self.policy
            group = is_group(chat_id)
            bucket = Bucket(
                p.group_rate if group else p.chat_rate, p.group_burst if group else p.chat_burst
            )
            self._chats[key] = bucket
        return bucket

    def _bot(self, bot_id: str) -> Bucket:
        bucket = self._bots.get(bot_id)
        if bucket is None:
            bucket = self._bots[bot_id] = Bucket(self.policy.bot_rate, self.policy.bot_burst)
        return bucket

    def _prune(self) -> None:
        if len(self._chats) < self._prune_at:
            return
        now = self._clock.monotonic()
        self._chats = {k: b for k, b in self._chats.items() if not b.idle(now)}
        self._prune_at = max(_PRUNE_AT, 2 * len(self._chats))

    def __len__(self) -> int:
        return len(self._chats)
