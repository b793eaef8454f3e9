"""split_text: a long reply cut at paragraph, sentence and word boundaries, in UTF-16 units."""

from __future__ import annotations

from agents_bridge.deliver.telegram_api import TELEGRAM_MAX_CHARS
from agents_bridge.deliver.text import split_text


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
