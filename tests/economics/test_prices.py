"""Prices a user would see in `bounded models` and costs they would see in the ledger."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from fractions import Fraction

import pytest

from bounded.config.schema import ModelConfig, Price
from bounded.economics.prices import (
    builtin_models,
    cost_usd,
    max_cost_usd,
    price_for,
)
from bounded.economics.usage import Usage


def test_gpt_4o_mini_is_priced_from_the_builtin_table() -> None:
    quote = price_for("gpt-4o-mini", None)
    assert quote.source == "builtin"
    assert quote.matched == "gpt-4o-mini"
    assert quote.price.input == Decimal("0.15")
    assert quote.price.output == Decimal("0.60")
    assert quote.price.cached_input == Decimal("0.075")


@pytest.mark.parametrize(
    ("name", "matched"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("models/gemini-2.0-flash", "gemini-2.0-flash"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("openai/gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),  # Vertex AI
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),  # Bedrock
        ("GPT-4o-Mini", "gpt-4o-mini"),
    ],
)
def test_dated_and_provider_spellings_resolve_to_the_base_model(name: str, matched: str) -> None:
    quote = price_for(name, None)
    assert (quote.source, quote.matched) == ("builtin", matched)
    assert quote.price == price_for(matched, None).price


def test_longest_prefix_wins_so_mini_is_not_priced_as_its_big_sibling() -> None:
    mini = price_for("gpt-4o-mini-2024-07-18", None).price
    big = price_for("gpt-4o-2024-08-06", None).price
    assert mini.input == Decimal("0.15")
    assert big.input == Decimal("2.50")
    assert price_for("claude-opus-4-1-20250805", None).price.input == Decimal("15.00")
    assert price_for("claude-opus-4-5-20251101", None).price.input == Decimal("5.00")
    assert price_for("gemini-2.5-flash-lite", None).matched == "gemini-2.5-flash-lite"


def test_a_prefix_only_matches_at_a_separator() -> None:
    # "gpt-4" ($30 in) must not price gpt-4o or gpt-4.1, nor an unknown gpt-4.x.
    assert price_for("gpt-4-0613", None).matched == "gpt-4"
    assert price_for("gpt-4o", None).price.input == Decimal("2.50")
    assert price_for("gpt-4.1", None).price.input == Decimal("2.00")
    assert price_for("gpt-4.9-preview", None).source == "unpriced"


def test_an_exact_snapshot_entry_beats_its_prefix() -> None:
    # The first gpt-4o snapshot kept its launch price.
    assert price_for("gpt-4o-2024-05-13", None).price.input == Decimal("5.00")


def test_configured_price_overrides_the_table() -> None:
    configured = Price(input=Decimal("1"), output=Decimal("2"), cached_input=Decimal("0.5"))
    quote = price_for("gpt-4o-mini", configured)
    assert quote.source == "config"
    assert quote.price == configured
    assert quote.matched is None


def test_an_explicit_zero_price_is_honoured() -> None:
    free = Price.model_validate({"input": 0, "output": 0})
    quote = price_for("gpt-4o", free)
    assert quote.source == "config"
    assert cost_usd(quote.price, Usage(1000, 1000)) == 0


def test_a_model_without_a_price_block_falls_back_to_the_table() -> None:
    # ModelConfig gives every model a default Price(); that default is not "configured".
    model = ModelConfig(provider="openai", model="gpt-4o-mini")
    quote = price_for(model.model, model.price)
    assert quote.source == "builtin"
    assert quote.price.input == Decimal("0.15")


def test_unknown_and_local_models_cost_zero_and_say_so() -> None:
    for name in ("smollm2-135m-instruct", "llama3:8b", "my-finetune"):
        quote = price_for(name, ModelConfig(provider="local", model=name).price)
        assert quote.source == "unpriced"
        assert quote.matched is None
        assert cost_usd(quote.price, Usage(5000, 5000, 1000)) == 0
        assert max_cost_usd(quote.price, 5000, 5000) == 0


def test_cost_is_exact_with_cached_input() -> None:
    price = price_for("gpt-4o-mini", None).price
    # 600,000 uncached x $0.15 + 400,000 cached x $0.075 + 250,000 out x $0.60, per million
    # = 0.09 + 0.03 + 0.15
    cost = cost_usd(
        price, Usage(input_tokens=1_000_000, output_tokens=250_000, cached_tokens=400_000)
    )
    assert isinstance(cost, Decimal)
    assert cost == Decimal("0.27")
    assert str(cost) == "0.2700000000"


def test_no_float_artefacts() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in floats; the ledger must say 0.3.
    price = Price(input=Decimal("0.1"), output=Decimal("0.2"))
    assert cost_usd(price, Usage(1_000_000, 1_000_000)) == Decimal("0.3")
    total = sum((cost_usd(price, Usage(1, 0)) for _ in range(10)), Decimal(0))
    assert total == Decimal("0.000001")


def test_cached_tokens_bill_at_input_when_there_is_no_cached_price() -> None:
    price = Price(input=Decimal("2"), output=Decimal("0"))
    assert cost_usd(price, Usage(1_000_000, 0, 400_000)) == Decimal("2")


def test_reasoning_tokens_are_not_counted_twice() -> None:
    price = price_for("o4-mini", None).price
    plain = cost_usd(price, Usage(input_tokens=100, output_tokens=1000))
    reasoning = cost_usd(price, Usage(input_tokens=100, output_tokens=1000, reasoning_tokens=800))
    assert plain == reasoning == Decimal("0.00451")  # 100 x 1.10 + 1000 x 4.40, per million


def test_costs_keep_ten_decimals_rounded_half_even() -> None:
    # One cached gpt-5-nano token: $5e-9, visible rather than rounded to zero.
    assert cost_usd(price_for("gpt-5-nano", None).price, Usage(1, 0, 1)) == Decimal("5E-9")
    assert cost_usd(Price(input=Decimal("0.00015")), Usage(1)) == Decimal("2E-10")
    assert cost_usd(Price(input=Decimal("0.00025")), Usage(1)) == Decimal("2E-10")
    assert cost_usd(Price(input=Decimal("0.00035")), Usage(1)) == Decimal("4E-10")
    assert cost_usd(Price(input=Decimal("3")), Usage(7)).as_tuple().exponent == -10


def test_malformed_usage_never_gives_a_negative_cost() -> None:
    price = price_for("gpt-4o", None).price
    # More cached than input: all input is billed at the cached rate, nothing negative.
    assert cost_usd(price, Usage(100, 0, 500)) == Decimal("0.000125")
    assert cost_usd(price, Usage(-5, -5, -5)) == 0


def test_max_cost_is_the_uncached_full_output_bound() -> None:
    price = price_for("gpt-4o", None).price
    # 1,000 prompt x $2.50 + 500 output x $10.00, per million
    assert max_cost_usd(price, 1000, 500) == Decimal("0.0075")


def test_max_cost_bounds_every_actual_cost_for_the_same_tokens() -> None:
    rng = random.Random(7)
    prices = [price_for(name, None).price for name in builtin_models()]
    # A configured cached rate above input must still be bounded.
    prices.append(
        Price(input=Decimal("0.00013"), output=Decimal("0.7"), cached_input=Decimal("0.00029"))
    )
    for _ in range(400):
        price = rng.choice(prices)
        prompt = rng.randint(0, 300_000)
        output = rng.randint(0, 64_000)
        bound = max_cost_usd(price, prompt, output)
        for used_output in (output, rng.randint(0, output)):
            usage = Usage(prompt, used_output, rng.randint(0, prompt))
            assert cost_usd(price, usage) <= bound


def _exact(value: Fraction, *, up: bool) -> Decimal:
    """``value`` USD in 1e-10 steps: rounded up, or half-even, from the exact fraction."""
    steps = value * 10**10
    whole = math.ceil(steps) if up else round(steps)  # Fraction's round is half-even
    return Decimal(whole).scaleb(-10)


def test_costs_match_exact_fractions_for_prices_made_and_dropped() -> None:
    # Fresh Price objects every time, none kept: ids are reused, and each cost must still
    # be its own price's (costs are computed from integers cached per Price).
    rng = random.Random(11)
    rates = ["0", "0.15", "2.5", "0.0375", "0.00013", "12.345678912", "150", "0.0000000003"]
    for _ in range(2000):
        price = Price(
            input=Decimal(rng.choice(rates)),
            output=Decimal(rng.choice(rates)),
            cached_input=rng.choice([None, Decimal(rng.choice(rates))]),
        )
        prompt, output = rng.randint(0, 2_000_000), rng.randint(0, 200_000)
        cached = rng.randint(0, prompt)
        cached_rate = price.input if price.cached_input is None else price.cached_input
        exact = (
            (prompt - cached) * Fraction(price.input)
            + cached * Fraction(cached_rate)
            + output * Fraction(price.output)
        ) / 10**6
        assert cost_usd(price, Usage(prompt, output, cached)) == _exact(exact, up=False)
        bound = (prompt * max(Fraction(price.input), Fraction(cached_rate))) + output * Fraction(
            price.output
        )
        assert max_cost_usd(price, prompt, output) == _exact(bound / 10**6, up=True)


def test_every_builtin_price_is_sane() -> None:
    names = builtin_models()
    assert {"gpt-4o-mini", "claude-haiku-4-5", "gemini-2.5-pro", "text-embedding-3-small"} <= set(
        names
    )
    for name in names:
        price = price_for(name, None).price
        assert price.input > 0, name
        assert price.output >= 0, name
        assert price.cached_input is None or 0 < price.cached_input <= price.input, name
