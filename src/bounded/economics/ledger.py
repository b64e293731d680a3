"""The cost ledger: one row per request, durable before the client gets its answer.

Rows are written with group commit: every row recorded during one turn of the event loop
goes into one transaction, and each ``record`` call returns only once its row is
committed. SQLite in WAL mode with ``synchronous=NORMAL`` makes a commit one ``write()``
into the WAL and no fsync, so there is no disk sync per request on the hot path, yet a row
survives the process being killed the instant after its response left.

    ledger = SqlLedger(Database.open(url))
    await ledger.record(row)      # then respond

One bad row never fails the others. ``record`` first checks the row against the limits
below (a few length and range checks) and refuses one that no store could take with
``InvalidLedgerRow`` (400) for that request alone. If the database still refuses a batch
for what is in it, its rows are written again one at a time: the good ones are committed,
only the one refused gets ``LedgerRowRejected`` (503). A failure of the store itself (locked,
full, unreachable) fails the batch with ``LedgerUnavailable`` (503), as every row would.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from bounded.economics.checkpoint import Checkpointer
from bounded.economics.usage import Usage
from bounded.errors import BoundedError, InvalidRequest
from bounded.store.db import Database

log = logging.getLogger("bounded.ledger")

E10 = Decimal("1e10")
# A row as INSERT parameters, in COLUMNS order (a list when it came over a socket).
Values = Sequence[object]


# The longest text each ledger field may hold, in characters (``len``), so that the gateway
# can refuse the same values at its edge (x-bounded-trace-id, x-bounded-session) with a
# better message. Where a column has a type with a length it is that length; the rest stay far
# under PostgreSQL's btree limit of about 2,700 bytes per index entry (ix_ledger_session_partial,
# ix_ledger_team_ts, ...): 256 characters are at most 1 KiB of UTF-8.
MAX_TRACE_ID_CHARS = 64  # ledger.trace_id and budget_alerts.trace_id are VARCHAR(64)
MAX_KEY_ID_CHARS = 32  # ledger.key_id is VARCHAR(32)
MAX_RELEASE_ID_CHARS = 32  # ledger.release_id is VARCHAR(32)
MAX_SESSION_CHARS = 256  # the client's x-bounded-session, indexed
MAX_NAME_CHARS = 256  # team, feature, arm, provider, deployment, model, usage_source, error_class
MAX_SCOPE_CHARS = MAX_NAME_CHARS + 16  # a budget alert's scope: "feature:" + a name
MAX_PERIOD_CHARS = 16  # budget_alerts.period is VARCHAR(16)
INT4 = (-(2**31), 2**31 - 1)  # token counts, status and attempts are INTEGER columns
INT8 = (-(2**63), 2**63 - 1)  # cost_e10 is BIGINT

TEXT_LIMITS: dict[str, int] = {
    "trace_id": MAX_TRACE_ID_CHARS,
    "session_id": MAX_SESSION_CHARS,
    "key_id": MAX_KEY_ID_CHARS,
    "release_id": MAX_RELEASE_ID_CHARS,
    **dict.fromkeys(
        (
            "team",
            "feature",
            "arm",
            "provider",
            "deployment",
            "model",
            "usage_source",
            "error_class",
            "operation",
            "flags",
            "validation",
            "prompt_version",
        ),
        MAX_NAME_CHARS,
    ),
}
INT_RANGES: dict[str, tuple[int, int]] = {
    **dict.fromkeys(
        (
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "reasoning_tokens",
            "status",
            "attempts",
        ),
        INT4,
    ),
    "cost_e10": INT8,
}


class LedgerUnavailable(BoundedError):
    """The ledger cannot take rows now (the store is down, locked or full): 503, later may do."""

    status = 503
    type = "api_error"
    default_code = "ledger_unavailable"


class LedgerRowRejected(LedgerUnavailable):
    """The database refused this one row although it passed :func:`check_row`; the other
    rows of its batch were committed. A bug or a new constraint, not the client's doing."""

    default_code = "ledger_row_rejected"


class InvalidLedgerRow(InvalidRequest):
    """A row no store could take (an id too long, a NUL character), refused before it is
    queued: 400 for its own request, which is where such a value comes from (a header)."""

    default_code = "invalid_ledger_row"


@dataclass(slots=True)
class LedgerRow:
    ts: float
    trace_id: str
    session_id: str | None
    key_id: str | None
    team: str | None
    feature: str | None
    arm: str
    provider: str | None
    deployment: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost_e10: int
    usage_source: str
    latency_ms: float
    ttft_ms: float | None
    status: int
    error_class: str | None
    attempts: int
    stream: bool
    operation: str = "chat"  # chat | embeddings
    # Comma-separated marks a reader should not miss: over_reservation (the upstream used
    # more than was reserved), over_max_tokens, cut_at_max_tokens (bounded ended a stream).
    flags: str | None = None
    # The validate stage's verdict on this row's answer (passed, failed, ...) and, for
    # features with retrieval and a groundedness guard, the answer's score.
    validation: str | None = None
    groundedness: float | None = None
    # A cascade's accepted answer priced at its route's last (dearest) target: what the
    # cascade saved. Null on other rows.
    baseline_cost_e10: int | None = None
    # The prompt version the request was rendered with (bounded.prompts): its number, or
    # null for a feature without a prompt and for a model called directly.
    prompt_version: str | None = None
    # The release (bounded.releases) whose arm served it, stable arm included; null outside one.
    release_id: str | None = None

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_e10) / E10


COLUMNS = tuple(LedgerRow.__dataclass_fields__)
_VALUES = operator.attrgetter(*COLUMNS)
_TEXT_ITEMS = tuple(TEXT_LIMITS.items())
_TEXTS = operator.attrgetter(*TEXT_LIMITS)
_INT_ITEMS = tuple(INT_RANGES.items())
_INTS = operator.attrgetter(*INT_RANGES)
INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def check_row(row: LedgerRow) -> None:
    """Refuse a row no store could take, before it joins a batch. On every row, so cheap:
    the fields are read in one C call, and a row whose texts are all short, plain ASCII and
    free of NULs (the usual case) passes with one loop of length checks."""
    texts = _TEXTS(row)
    for (field, limit), value in zip(_TEXT_ITEMS, texts, strict=True):
        if value is not None and (len(value) > limit or not value.isascii() or "\x00" in value):
            check_text(field, value, limit)
    for (field, (low, high)), number in zip(_INT_ITEMS, _INTS(row), strict=True):
        if not low <= number <= high:
            raise InvalidLedgerRow(
                f"cannot record this request: its ledger {field} {number} is out of range",
                param=field,
            )


def check_alert(scope: str, period: str, trace_id: str) -> None:
    check_text("scope", scope, MAX_SCOPE_CHARS)
    check_text("period", period, MAX_PERIOD_CHARS)
    check_text("trace_id", trace_id, MAX_TRACE_ID_CHARS)


def check_text(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidLedgerRow(
            f"cannot record this request: its {field} is {len(value)} characters long;"
            f" the most the ledger takes is {limit}",
            param=field,
        )
    if "\x00" in value:
        raise InvalidLedgerRow(
            f"cannot record this request: its {field} contains a NUL character,"
            " which PostgreSQL cannot store",
            param=field,
        )
    if not value.isascii():  # O(1) in CPython; only non-ASCII text is encoded to check it
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidLedgerRow(
                f"cannot record this request: its {field} is not valid Unicode (a lone surrogate)",
                param=field,
            ) from None


def row_values(row: LedgerRow) -> tuple[object, ...]:
    """The row as INSERT's parameters (``astuple`` would deep-copy every field)."""
    values: tuple[object, ...] = _VALUES(row)
    return values


def to_e10(cost: Decimal) -> int:
    return int((cost * E10).to_integral_value())


def usage_fields(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


class Ledger(Protocol):
    async def record(self, row: LedgerRow) -> None: ...

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None: ...

    async def aclose(self) -> None: ...


class SqlLedger:
    """Group-committed writes through the store's synchronous connection (SQLite)."""

    def __init__(self, db: Database):
        self._db = db
        self._pending: list[tuple[Values, asyncio.Future[None]]] = []
        self._scheduled = False
        self._checkpointer = Checkpointer.start(db) if db.dialect == "sqlite" else None

    async def record(self, row: LedgerRow) -> None:
        check_row(row)
        await self.enqueue(row_values(row))

    def enqueue(self, values: Values) -> asyncio.Future[None]:
        """Queue a checked row's values for this loop turn's commit; the future resolves
        once it is committed (``bounded serve --workers`` takes rows from every worker
        this way, in the process that owns the ledger)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((values, done))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return done

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        try:
            self._insert([values for values, _ in batch])
        except Exception as exc:
            if _store_failed(exc):
                log.exception("ledger write failed for %d row(s)", len(batch))
                error = LedgerUnavailable(f"cost ledger write failed: {exc}")
                for _, done in batch:
                    _resolve(done, error)
                return
            log.warning(
                "the store refused a batch of %d ledger row(s) (%r); writing them one by one",
                len(batch),
                exc,
            )
            self._flush_each(batch)
            return
        for _, done in batch:
            _resolve(done, None)

    def _flush_each(self, batch: list[tuple[Values, asyncio.Future[None]]]) -> None:
        """Each row in its own transaction: the good ones commit, the refused one fails."""
        for i, (values, done) in enumerate(batch):
            try:
                self._insert([values])
            except Exception as exc:
                if _store_failed(exc):  # the rest would wait on the same lock or disk
                    log.exception("ledger write failed for %d row(s)", len(batch) - i)
                    error = LedgerUnavailable(f"cost ledger write failed: {exc}")
                    for _, rest in batch[i:]:
                        _resolve(rest, error)
                    return
                log.error("the store refused a ledger row: %r (%r)", exc, values)
                _resolve(done, LedgerRowRejected(f"cost ledger refused this row: {exc}"))
            else:
                _resolve(done, None)

    def _insert(self, rows: list[Values]) -> None:
        with self._db.transaction():
            self._db.executemany(INSERT, rows)

    async def record_alert(
        self, ts: float, scope: str, period: str, amount: Decimal, trace_id: str
    ) -> None:
        check_alert(scope, period, trace_id)
        self._db.execute(
            "INSERT INTO budget_alerts (ts, scope, period, amount_usd, trace_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (ts, scope, period, str(amount), trace_id),
        )

    async def aclose(self) -> None:
        if self._pending:
            self._flush()
        if self._checkpointer is not None:
            self._checkpointer.stop()


def _store_failed(exc: BaseException) -> bool:
    """SQLite's OperationalError is the store itself (locked past the busy timeout, disk
    full, I/O, no such table): every row would fail alike. Anything else (a constraint, a
    value it cannot bind) may be one row's doing."""
    return isinstance(exc, sqlite3.OperationalError)


def _resolve(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its caller was cancelled; the row is committed (or not) all the same
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
