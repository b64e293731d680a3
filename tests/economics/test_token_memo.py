"""Text a feature sends on every request (its system prompt, its tools, a chat's history) is
tokenized once, the new message every time, and the counts are the same either way."""

from __future__ import annotations

import threading

from bounded.economics.token_memo import CountMemo
from bounded.economics.tokens import TokenCounter

SYSTEM = "You are the returns desk of a shoe shop. Answer in two sentences. " * 60
TOOL = {
    "type": "function",
    "function": {
        "name": "order_status",
        "description": "Where a customer's order is.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    },
}


def _recording_counter() -> tuple[TokenCounter, list[str]]:
    """A TokenCounter whose model counts with the real o200k encoding, noting each text."""
    real = TokenCounter()
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return real.count_text(text, "gpt-4o")

    counter = TokenCounter()
    counter.register("shop-model", count)
    return counter, seen


def test_a_system_prompt_is_tokenized_once_and_each_new_message_every_time() -> None:
    counter, seen = _recording_counter()
    reference = TokenCounter()
    for question in ("Where is my order?", "Can I return worn shoes?", "Where is my order?"):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        assert counter.count_messages(messages, "shop-model") == reference.count_messages(
            messages, "gpt-4o"
        )
    assert seen.count(SYSTEM) == 1
    # The last message is the new one: never remembered, even when it repeats.
    assert seen.count("Where is my order?") == 2


def test_a_chats_history_is_tokenized_once_per_message_not_once_per_turn() -> None:
    counter, seen = _recording_counter()
    reference = TokenCounter()
    history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM}]
    for turn in range(6):
        history.append({"role": "user", "content": f"question {turn}: how long does it take?"})
        assert counter.count_messages(history, "shop-model") == reference.count_messages(
            history, "gpt-4o"
        )
        history.append({"role": "assistant", "content": f"answer {turn}: three to five days."})
    # Each question: once as the new message, once more the first time it is history.
    assert seen.count("question 0: how long does it take?") == 2
    assert seen.count("question 4: how long does it take?") == 2
    assert seen.count(SYSTEM) == 1


def test_tool_definitions_are_tokenized_once() -> None:
    counter, seen = _recording_counter()
    first = counter.count_tools([TOOL], "shop-model")
    assert first > 10
    assert counter.count_tools([TOOL], "shop-model") == first
    assert len(seen) == 1


def test_the_memo_keeps_within_its_budget_and_forgets_the_oldest_first() -> None:
    calls: list[str] = []

    def count(text: str) -> int:
        calls.append(text)
        return len(text)

    memo = CountMemo(count, max_chars=1_000, max_texts=5)
    texts = [f"{i:03d}" * 50 for i in range(8)]  # 150 characters each
    for text in texts:
        assert memo(text) == 150
    assert len(memo) == 5 and memo.chars == 750
    calls.clear()
    assert memo(texts[-1]) == 150 and memo(texts[3]) == 150  # still held
    assert calls == []
    assert memo(texts[0]) == 150  # the oldest was forgotten: counted again
    assert calls == [texts[0]]
    # A text over a quarter of the budget is counted every time and holds nothing.
    huge = "x" * 400
    assert memo(huge) == 400 and memo(huge) == 400
    assert calls.count(huge) == 2
    assert memo.chars <= 1_000


def test_threads_counting_at_once_agree_and_keep_the_budget() -> None:
    memo = CountMemo(len, max_chars=5_000, max_texts=1_000)
    texts = [f"text {i} " * 20 for i in range(400)]
    wrong: list[str] = []

    def work(offset: int) -> None:
        for i in range(len(texts)):
            text = texts[(i + offset) % len(texts)]
            if memo(text) != len(text):
                wrong.append(text)

    threads = [threading.Thread(target=work, args=(k * 37,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert memo.chars == sum(len(t) for t in list(memo._memo._values)) <= 5_000
