"""Prompt versions and labels in the store (tables from migration 0005).

    store = PromptStore(db)
    v = store.push("support-answer", PromptTemplate.parse(data), author="ana", message="shorter")
    store.label("support-answer", v.version, "candidate", actor="ana")
    store.get("support-answer", "production")          # a label, a number, "v3" or "3"

A version is immutable: rows are only inserted, numbered 1, 2, 3... per feature. Labels
point at versions and move; ``latest`` moves by itself on every push, and a feature's
first version is also labelled ``production`` (there is nothing else it could serve).
Every push and label move bumps the one-row ``prompt_generation`` counter in the same
transaction, and writes its audit entry there too: a replica that reads the counter knows
whether anything changed, and no change exists without its entry. On PostgreSQL the
counter's row lock also serialises concurrent pushes, so two never take the same number.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from bounded.audit.log import record_in
from bounded.errors import InvalidRequest, NotFound
from bounded.prompts.template import PromptTemplate
from bounded.store.db import Database

PRODUCTION, CANDIDATE, LATEST = "production", "candidate", "latest"
CONFIG_AUTHOR = "bounded.yaml"
MAX_FEATURE_CHARS = 256
_LABEL = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_NUMBER = re.compile(r"^v?([0-9]{1,9})$")


class PromptNotFound(NotFound):
    default_code = "prompt_not_found"


@dataclass(frozen=True, slots=True)
class PromptVersion:
    feature: str
    version: int
    template: PromptTemplate = field(compare=False)
    digest: str
    author: str
    message: str
    source: str | None
    created_at: float

    @property
    def id(self) -> str:
        """What goes on ledger rows and in ``x-bounded-prompt-version``: the number."""
        return str(self.version)

    def json(self, labels: list[str] | None = None) -> dict[str, Any]:
        out = {
            "feature": self.feature,
            "version": self.version,
            "digest": self.digest,
            "author": self.author,
            "message": self.message,
            "source": self.source,
            "created_at": self.created_at,
            "template": self.template.json(),
            "variables": self.template.variables(),
        }
        if labels is not None:
            out["labels"] = labels
        return out


@dataclass(frozen=True, slots=True)
class Pushed:
    version: PromptVersion
    created: bool  # False: identical to the latest version, which is returned instead


class PromptStore:
    def __init__(self, db: Database):
        self.db = db

    # -- writes ------------------------------------------------------------------------

    def push(
        self,
        feature: str,
        template: PromptTemplate,
        *,
        author: str,
        message: str = "",
        source: str | None = None,
        labels: tuple[str, ...] = (),
    ) -> Pushed:
        """Store ``template`` as the feature's next version, unless it is the latest one
        already (pushing the same file twice, as CI does, makes no new version; ``labels``
        are moved to that one instead)."""
        check_feature(feature)
        for label in labels:
            check_label(label)
        digest = template.digest
        with self.db.transaction():
            self._bump()
            latest = self._latest_row(feature)
            if latest is not None and latest["digest"] == digest:
                # No new version; the labels asked for still point at this one.
                number, now = int(latest["version"]), time.time()
                for label in labels:
                    row = self._label_row(feature, label)
                    if row is None or int(row["version"]) != number:
                        self._move(feature, label, number, author, now)
                return Pushed(_version(latest), created=False)
            number = 1 if latest is None else int(latest["version"]) + 1
            now = time.time()
            self.db.execute(
                "INSERT INTO prompt_versions (feature, version, template, digest, author,"
                " message, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    feature,
                    number,
                    template.canonical().decode(),
                    digest,
                    author,
                    message,
                    source,
                    now,
                ),
            )
            record_in(
                self.db,
                "prompt.push",
                feature,
                actor=author,
                detail={"version": number, "digest": digest, "message": message, "source": source},
            )
            moved = [LATEST, *labels]
            if number == 1 and PRODUCTION not in labels:
                moved.append(PRODUCTION)
            for label in moved:
                self._move(feature, label, number, author, now)
        return Pushed(self.get(feature, number), created=True)

    def label(self, feature: str, ref: int | str, label: str, *, actor: str) -> int | None:
        """Point ``label`` at a version; returns the version it pointed at before."""
        check_label(label)
        if label == LATEST:
            raise InvalidRequest(
                "'latest' moves by itself to each new version; it cannot be set",
                param="label",
            )
        with self.db.transaction():
            version = self._resolve(feature, ref)
            self._bump()
            return self._move(feature, label, version, actor, time.time())

    def seed_from_config(self, feature: str, system: str) -> PromptVersion | None:
        """``prompt.system`` in bounded.yaml is version 1 of its feature. While the
        feature's production version still comes from the file, a changed file pushes
        a new version and moves production to it; once someone has labelled a pushed
        version production, the store owns the prompt and the file's is ignored."""
        template = PromptTemplate((("system", system),))
        digest = template.digest
        production = self._label_row(feature, PRODUCTION)
        if production is not None:
            row = self._version_row(feature, int(production["version"]))
            if row is None or row["author"] != CONFIG_AUTHOR or row["digest"] == digest:
                return None
        elif self._latest_row(feature) is not None:
            return None  # pushed versions, none in production: someone is deciding
        pushed = self.push(
            feature,
            template,
            author=CONFIG_AUTHOR,
            message="prompt.system in bounded.yaml",
            source=CONFIG_AUTHOR,
            labels=(PRODUCTION,),
        )
        return pushed.version

    # -- reads -------------------------------------------------------------------------

    def get(self, feature: str, ref: int | str) -> PromptVersion:
        version = self._resolve(feature, ref)
        row = self._version_row(feature, version)
        if row is None:
            raise self._not_found(feature, ref)
        return _version(row)

    def find(self, feature: str, ref: int | str) -> PromptVersion | None:
        try:
            return self.get(feature, ref)
        except PromptNotFound:
            return None

    def versions(self, feature: str) -> list[PromptVersion]:
        rows = self.db.execute(
            "SELECT * FROM prompt_versions WHERE feature = ? ORDER BY version", (feature,)
        )
        return [_version(r) for r in rows]

    def labels(self, feature: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT label, version FROM prompt_labels WHERE feature = ? ORDER BY label",
            (feature,),
        )
        return {r["label"]: int(r["version"]) for r in rows}

    def features(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT feature FROM prompt_versions ORDER BY feature")
        return [r["feature"] for r in rows]

    def generation(self) -> int:
        """The counter every change bumps: one indexed row, read to validate a cache."""
        rows = self.db.execute("SELECT value FROM prompt_generation WHERE id = 1")
        return int(rows[0]["value"]) if rows else 0

    # -- internals ---------------------------------------------------------------------

    def _bump(self) -> None:
        self.db.execute("UPDATE prompt_generation SET value = value + 1 WHERE id = 1")

    def _move(self, feature: str, label: str, version: int, actor: str, now: float) -> int | None:
        before = self._label_row(feature, label)
        previous = None if before is None else int(before["version"])
        if before is None:
            self.db.execute(
                "INSERT INTO prompt_labels (feature, label, version, updated_at, updated_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (feature, label, version, now, actor),
            )
        else:
            self.db.execute(
                "UPDATE prompt_labels SET version = ?, updated_at = ?, updated_by = ?"
                " WHERE feature = ? AND label = ?",
                (version, now, actor, feature, label),
            )
        if label != LATEST:  # latest follows every push; the push's entry says so
            record_in(
                self.db,
                "prompt.label",
                feature,
                actor=actor,
                detail={"label": label, "version": version, "previous": previous},
            )
        return previous

    def _resolve(self, feature: str, ref: int | str) -> int:
        if isinstance(ref, int):
            number: int | None = ref
        else:
            match = _NUMBER.match(ref.strip())
            number = int(match.group(1)) if match else None
        if number is not None:
            if self._version_row(feature, number) is None:
                raise self._not_found(feature, ref)
            return number
        row = self._label_row(feature, str(ref))
        if row is None:
            raise self._not_found(feature, ref)
        return int(row["version"])

    def _not_found(self, feature: str, ref: int | str) -> PromptNotFound:
        known = self.versions(feature)
        if not known:
            return PromptNotFound(
                f"feature {feature!r} has no prompt versions; push one with "
                f"`bounded prompt push {feature} FILE`",
                param="feature",
            )
        labels = ", ".join(f"{k}={v}" for k, v in self.labels(feature).items())
        return PromptNotFound(
            f"feature {feature!r} has no prompt version or label {str(ref)!r}; it has "
            f"versions 1 to {known[-1].version} and labels {labels or 'none'}",
            param="version",
        )

    def _latest_row(self, feature: str) -> Any:
        rows = self.db.execute(
            "SELECT * FROM prompt_versions WHERE feature = ? ORDER BY version DESC LIMIT 1",
            (feature,),
        )
        return rows[0] if rows else None

    def _version_row(self, feature: str, version: int) -> Any:
        rows = self.db.execute(
            "SELECT * FROM prompt_versions WHERE feature = ? AND version = ?", (feature, version)
        )
        return rows[0] if rows else None

    def _label_row(self, feature: str, label: str) -> Any:
        rows = self.db.execute(
            "SELECT version FROM prompt_labels WHERE feature = ? AND label = ?", (feature, label)
        )
        return rows[0] if rows else None


def check_feature(feature: str) -> None:
    if not feature or len(feature) > MAX_FEATURE_CHARS or "\x00" in feature:
        raise InvalidRequest(
            f"a feature name is 1 to {MAX_FEATURE_CHARS} characters", param="feature"
        )


def check_label(label: str) -> None:
    if not _LABEL.match(label) or _NUMBER.match(label):
        raise InvalidRequest(
            f"label {label!r} is not a label: lower-case letters, digits and . _ -, "
            "starting with a letter, not a version number (production, candidate, ...)",
            param="label",
        )


def _version(row: Any) -> PromptVersion:
    return PromptVersion(
        feature=row["feature"],
        version=int(row["version"]),
        template=PromptTemplate.from_json(orjson.loads(row["template"])),
        digest=row["digest"],
        author=row["author"],
        message=row["message"],
        source=row["source"],
        created_at=float(row["created_at"]),
    )


def seed_config(store: PromptStore, systems: dict[str, str]) -> list[PromptVersion]:
    """:meth:`PromptStore.seed_from_config` for each feature's ``prompt.system``; the
    versions it made (none when the store already has them)."""
    made = []
    for feature, system in systems.items():
        version = store.seed_from_config(feature, system)
        if version is not None:
            made.append(version)
    return made
