"""Model prices and exact call costs.

``price_for`` answers "what does this model cost per million tokens, and who said so":
a price set in ``bounded.yaml`` wins, then the built-in table below, then zero (a local
or unknown model costs nothing unless priced). ``cost_usd`` settles a call from its
``Usage``; ``max_cost_usd`` is the upper bound a budget reserves before the call.

Money is ``Decimal`` end to end: a float cannot represent 0.15 exactly, and ledger rows
summed over millions of calls must reconcile with the provider's invoice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache
from typing import Literal

from bounded.config.schema import Price
from bounded.economics.usage import Usage

PriceSource = Literal["config", "builtin", "unpriced"]

# Costs are stored to 1e-10 USD: a single gpt-5-nano cached token costs 5e-9 USD, so a
# coarser step would round real (if tiny) spend to zero, while 10 decimals still fits
# comfortably in the ledger's NUMERIC columns.
COST_QUANTUM = Decimal("1E-10")
_QUANTUM_EXPONENT = -10  # of COST_QUANTUM

# USD per million tokens: (input, output, cached input or None). Strings, never floats,
# so the Decimal is exactly the published figure.
#
# Sources, checked 2026-06 (standard tier; no batch, flex or priority discounts):
# - OpenAI: platform.openai.com/docs/pricing and the per-model pages on
#   developers.openai.com (gpt-5-nano page: $0.05 / $0.005 cached / $0.40).
# - Anthropic: platform.claude.com/docs/en/about-claude/pricing. Cached input is the
#   "cache hits & refreshes" price; cache *writes* are billed above input and are not
#   modelled here (Usage has no field for them).
# - Google: ai.google.dev/gemini-api/docs/pricing, the <=200k-token prompt tier (<=128k
#   for 1.5 models); a longer prompt is billed higher, so these under-price such calls.
#   Cached input is the context-caching read price; storage per hour is not modelled.
# Prices change: a `price:` block in bounded.yaml always overrides this table.
_TABLE: dict[str, tuple[str, str, str | None]] = {
    # OpenAI chat and reasoning models
    "gpt-5": ("1.25", "10.00", "0.125"),
    "gpt-5-mini": ("0.25", "2.00", "0.025"),
    "gpt-5-nano": ("0.05", "0.40", "0.005"),
    "gpt-5-pro": ("15.00", "120.00", None),
    "gpt-5.1": ("1.25", "10.00", "0.125"),
    "gpt-4.1": ("2.00", "8.00", "0.50"),
    "gpt-4.1-mini": ("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": ("0.10", "0.40", "0.025"),
    "gpt-4o": ("2.50", "10.00", "1.25"),
    # The first gpt-4o snapshot kept its launch price; exact names beat prefixes.
    "gpt-4o-2024-05-13": ("5.00", "15.00", None),
    "gpt-4o-mini": ("0.15", "0.60", "0.075"),
    "o1": ("15.00", "60.00", "7.50"),
    "o1-mini": ("1.10", "4.40", "0.55"),
    "o1-pro": ("150.00", "600.00", None),
    "o3": ("2.00", "8.00", "0.50"),
    "o3-mini": ("1.10", "4.40", "0.55"),
    "o3-pro": ("20.00", "80.00", None),
    "o4-mini": ("1.10", "4.40", "0.275"),
    "gpt-4-turbo": ("10.00", "30.00", None),
    "gpt-4": ("30.00", "60.00", None),
    "gpt-3.5-turbo": ("0.50", "1.50", None),
    # OpenAI embeddings (input only)
    "text-embedding-3-small": ("0.02", "0", None),
    "text-embedding-3-large": ("0.13", "0", None),
    "text-embedding-ada-002": ("0.10", "0", None),
    # Anthropic
    "claude-opus-4-6": ("5.00", "25.00", "0.50"),
    "claude-opus-4-5": ("5.00", "25.00", "0.50"),
    "claude-opus-4-1": ("15.00", "75.00", "1.50"),
    "claude-opus-4": ("15.00", "75.00", "1.50"),
    "claude-sonnet-4-6": ("3.00", "15.00", "0.30"),
    "claude-sonnet-4-5": ("3.00", "15.00", "0.30"),
    "claude-sonnet-4": ("3.00", "15.00", "0.30"),
    "claude-haiku-4-5": ("1.00", "5.00", "0.10"),
    "claude-3-7-sonnet": ("3.00", "15.00", "0.30"),
    "claude-3-5-sonnet": ("3.00", "15.00", "0.30"),
    "claude-3-5-haiku": ("0.80", "4.00", "0.08"),
    "claude-3-opus": ("15.00", "75.00", "1.50"),
    "claude-3-haiku": ("0.25", "1.25", "0.03"),
    # Google Gemini
    "gemini-2.5-pro": ("1.25", "10.00", "0.125"),
    "gemini-2.5-flash": ("0.30", "2.50", "0.03"),
    "gemini-2.5-flash-lite": ("0.10", "0.40", "0.01"),
    "gemini-2.0-flash": ("0.10", "0.40", "0.025"),
    "gemini-2.0-flash-lite": ("0.075", "0.30", None),
    "gemini-1.5-pro": ("1.25", "5.00", "0.3125"),
    "gemini-1.5-flash": ("0.075", "0.30", "0.01875"),
    "gemini-1.5-flash-8b": ("0.0375", "0.15", "0.01"),
}

# A table key matches a longer name only at one of these separators, so "gpt-4" prices
# "gpt-4-0613" but not "gpt-4o" or "gpt-4.1", and "o1" never prices "o1x".
# "-" covers dated snapshots (gpt-4o-mini-2024-07-18, claude-3-5-haiku-20241022) and
# suffixes (-latest, -preview-05-06, -001); "@" Vertex AI (claude-3-5-sonnet@20240620);
# ":" Bedrock versions (...-v1:0).
_SEPARATORS = frozenset("-@:")
# Bedrock ids look like "anthropic.claude-..." or, cross-region, "us.anthropic.claude-...".
_BEDROCK_VENDOR = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """A price and where it came from; ``matched`` is the table key for built-in prices."""

    price: Price
    source: PriceSource
    matched: str | None = None


_UNPRICED = Price()


def price_for(model_name: str, configured: Price | None) -> PriceQuote:
    """The price of ``model_name``: configured, else built-in, else zero.

    ``configured`` counts only when it sets at least one field explicitly. The schema
    gives every model a default ``Price()``; treating that default as "configured at $0"
    would silently make every hosted model free, so it falls through to the table. An
    explicit ``price: {input: 0, output: 0}`` is honoured (e.g. a self-hosted model).
    """
    if configured is not None and configured.model_fields_set:
        return PriceQuote(configured, "config")
    key = builtin_key(model_name)
    if key is None:
        return PriceQuote(_UNPRICED, "unpriced")
    return PriceQuote(_builtin_price(key), "builtin", key)


@lru_cache(maxsize=1024)
def builtin_key(model_name: str) -> str | None:
    """The built-in table entry for ``model_name``: exact, else the longest prefix.

    Provider spellings are normalised first: case, a path prefix ("models/gemini-2.0-flash",
    "openai/gpt-4o") and a Bedrock vendor prefix ("us.anthropic.claude-...").
    Cached because the gateway asks for the same few names on every request.
    """
    name = _BEDROCK_VENDOR.sub("", model_name.strip().lower().rsplit("/", 1)[-1])
    if name in _TABLE:
        return name
    best: str | None = None
    for key in _TABLE:
        if (
            len(name) > len(key)
            and name.startswith(key)
            and name[len(key)] in _SEPARATORS
            and (best is None or len(key) > len(best))
        ):
            best = key
    return best


@cache
def _builtin_price(key: str) -> Price:
    # Built lazily (and once per key) so importing this module does no pydantic work.
    input_, output, cached = _TABLE[key]
    return Price(
        input=Decimal(input_),
        output=Decimal(output),
        cached_input=None if cached is None else Decimal(cached),
    )


def builtin_models() -> list[str]:
    """The model names the built-in table prices, for ``bounded models`` and docs."""
    return sorted(_TABLE)


def cost_usd(price: Price, usage: Usage) -> Decimal:
    """The exact cost of one call, in USD, quantized to ``COST_QUANTUM`` (half-even).

    ``usage.input_tokens`` includes ``cached_tokens``, which are billed at
    ``cached_input`` (or ``input`` when the price has none). ``output_tokens`` already
    include reasoning tokens (OpenAI reports them that way and bills them as output),
    so ``reasoning_tokens`` is informational and not added again.

    Counts are clamped to be non-negative and cached to at most input: a malformed
    provider report must not produce a negative ledger row.
    """
    input_tokens = max(usage.input_tokens, 0)
    cached = min(max(usage.cached_tokens, 0), input_tokens)
    output_tokens = max(usage.output_tokens, 0)
    rates = _rates(price)
    quanta, rest = divmod(
        (input_tokens - cached) * rates.input
        + cached * rates.cached
        + output_tokens * rates.output,
        rates.denominator,
    )
    # Half-even keeps rounding unbiased across many ledger rows.
    if 2 * rest > rates.denominator or (2 * rest == rates.denominator and quanta & 1):
        quanta += 1
    return Decimal(quanta).scaleb(_QUANTUM_EXPONENT)


def max_cost_usd(price: Price, prompt_tokens: int, max_output_tokens: int) -> Decimal:
    """The most a call with this prompt and output cap can cost: what a budget reserves.

    No cache discount is assumed (every prompt token at the higher of the input and
    cached-input rates, in case a configured cached rate exceeds input) and the reply is
    assumed to use all of ``max_output_tokens``. Rounded up rather than half-even, so
    the reservation is never below what ``cost_usd`` settles for the same tokens.
    """
    rates = _rates(price)
    prompt = prompt_tokens if prompt_tokens > 0 else 0
    output = max_output_tokens if max_output_tokens > 0 else 0
    quanta, rest = divmod(prompt * rates.prompt + output * rates.output, rates.denominator)
    return Decimal(quanta + (rest > 0)).scaleb(_QUANTUM_EXPONENT)


@dataclass(frozen=True, slots=True)
class _Rates:
    """A price as integers: a count of tokens times a rate, divided by ``denominator``,
    is a cost in ``COST_QUANTUM`` units, exactly (every finite Decimal is a fraction)."""

    input: int
    cached: int
    output: int
    denominator: int
    prompt: int = 0  # the dearer of input and cached: what a reservation charges a prompt

    def __post_init__(self) -> None:
        object.__setattr__(self, "prompt", max(self.input, self.cached))


# Prices by identity, each kept with its Price so an id is never reused while cached.
# Integer arithmetic on cached fractions is a third of the cost of Decimal arithmetic in
# an exact context, and the gateway prices every request twice (reserve, settle).
_rates_cache: dict[int, tuple[Price, _Rates]] = {}


def _rates(price: Price) -> _Rates:
    found = _rates_cache.get(id(price))
    if found is not None and found[0] is price:
        return found[1]
    cached_rate = price.input if price.cached_input is None else price.cached_input
    (i, i_den), (c, c_den), (o, o_den) = (
        rate.as_integer_ratio() for rate in (price.input, cached_rate, price.output)
    )
    # tokens x (USD per million) -> quanta: x 10^-6 USD, / 10^exponent per quantum.
    scale = 10 ** (-_QUANTUM_EXPONENT - 6)
    rates = _Rates(
        input=i * c_den * o_den * scale,
        cached=c * i_den * o_den * scale,
        output=o * i_den * c_den * scale,
        denominator=i_den * c_den * o_den,
    )
    if len(_rates_cache) >= 1024:  # configs reloaded many times: start again
        _rates_cache.clear()
    _rates_cache[id(price)] = (price, rates)
    return rates
