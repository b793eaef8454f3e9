"""split_text and TelegramSender against the Telegram Bot API stand-in."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from agents_bridge.deliver.telegram_api import TELEGRAM_MAX_CHARS, TelegramSender, split_text
from common.errors import InvalidEvent, RetryableError
from common.settings import Secret, Settings
from devstack.telegram_api import TelegramApiStandIn
from tests.agents_bridge.bridge_fakes import BOT_TOKEN

# -- splitting ------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_short_text_is_one_chunk() -> None:
    assert split_text("  hello  ") == ["hello"]
    assert split_text("x" * TELEGRAM_MAX_CHARS) == ["x" * TELEGRAM_MAX_CHARS]
    assert split_text("   ") == []


def test_splits_at_paragraphs_first() -> None:
    first, second = "a" * 3000, "b" * 3000
    assert split_text(f"{first}\n\n{second}") == [first, second]


def test_splits_at_sentence_end_when_no_paragraph_fits() -> None:
    sentence = "This is a sentence. "
    text = sentence * 300  # 6000 characters, no line breaks
    chunks = split_text(text)
    assert len(chunks) == 2
    assert chunks[0].endswith(".")
    assert all(len(c) <= TELEGRAM_MAX_CHARS for c in chunks)
    assert " ".join(chunks) == text.strip()


def test_splits_at_words_without_sentences() -> None:
    text = " ".join(["word"] * 2000)  # 9999 characters
    chunks = split_text(text)
    assert all(len(c) <= TELEGRAM_MAX_CHARS for c in chunks)
    assert all(not c.startswith(" ") and not c.endswith(" ") for c in chunks)
    assert " ".join(chunks) == text


def test_one_huge_word_is_cut_hard() -> None:
    chunks = split_text("x" * 10_000)
    assert [len(c) for c in chunks] == [4096, 4096, 1808]


def test_limit_counts_utf16_units() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    chunks = split_text(text)
    assert all(utf16_len(c) <= TELEGRAM_MAX_CHARS for c in chunks)
    assert "".join(chunks) == text


def test_small_limit_keeps_all_words() -> None:
    text = "Hello world. How are you today?\n\nFine, thanks! And you?"
    chunks = split_text(text, limit=20)
    assert all(len(c) <= 20 for c in chunks)
    assert " ".join(chunks).split() == text.split()


# -- sending --------------------------------------------------------------------------


@pytest.fixture
async def api() -> AsyncIterator[TelegramApiStandIn]:
    stand_in = TelegramApiStandIn()
    stand_in.register_bot(BOT_TOKEN)
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


@pytest.fixture
async def sender(api: TelegramApiStandIn) -> AsyncIterator[TelegramSender]:
    async with aiohttp.ClientSession() as http:
        yield TelegramSender(http, Settings(telegram_api_base=api.base_url))


TOKEN = Secret(BOT_TOKEN)


async def test_send_message(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    message_id = await sender.send_message(TOKEN, "42", "hello", thread_id="7")
    assert message_id == 1
    [call] = api.messages()
    assert call.params == {"chat_id": 42, "text": "hello", "message_thread_id": 7}


async def test_non_numeric_chat_id_is_sent_as_a_string(
    api: TelegramApiStandIn, sender: TelegramSender
) -> None:
    await sender.send_message(TOKEN, "@channel", "hello")
    assert api.messages()[0].params["chat_id"] == "@channel"


async def test_429_carries_retry_after(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=429, retry_after=17)
    with pytest.raises(RetryableError) as info:
        await sender.send_message(TOKEN, "42", "hello")
    assert info.value.retry_after == 17
    assert "Too Many Requests" in info.value.reason
    assert not isinstance(info.value, InvalidEvent)


async def test_5xx_is_retryable(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=502)
    with pytest.raises(RetryableError, match="telegram_502"):
        await sender.send_message(TOKEN, "42", "hello")


async def test_blocked_bot_is_invalid(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.block_chat(42)
    with pytest.raises(InvalidEvent) as info:
        await sender.send_message(TOKEN, "42", "hello")
    assert info.value.reason == "telegram_403: Forbidden: bot was blocked by the user"


async def test_bad_request_is_invalid(api: TelegramApiStandIn, sender: TelegramSender) -> None:
    api.fail_next(1, status=400, description="Bad Request: chat not found")
    with pytest.raises(InvalidEvent, match="chat not found"):
        await sender.send_message(TOKEN, "42", "hello")


async def test_revoked_token_is_invalid_and_not_echoed(sender: TelegramSender) -> None:
    other = Secret("999:REVOKED-secret")
    with pytest.raises(InvalidEvent) as info:
        await sender.send_message(other, "42", "hello")
    assert info.value.reason == "telegram_401: Unauthorized"


async def test_connection_error_is_retryable_without_the_token() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with aiohttp.ClientSession() as http:
        sender = TelegramSender(http, Settings(telegram_api_base=f"http://127.0.0.1:{port}"))
        with pytest.raises(RetryableError) as info:
            await sender.send_message(TOKEN, "42", "hello")
    assert BOT_TOKEN not in info.value.reason
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
