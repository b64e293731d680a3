"""Prompt versions on SQLite and PostgreSQL: immutable, numbered, labelled, audited."""

from __future__ import annotations

import threading

import pytest

from bounded.audit import AuditLog
from bounded.errors import InvalidRequest
from bounded.prompts import PromptNotFound, PromptStore, PromptTemplate
from bounded.store.db import Database


def template(system: str, **params: object) -> PromptTemplate:
    return PromptTemplate.parse({"system": system, "params": params or None})


def test_versions_are_numbered_and_labels_move(any_db: Database, feature: str) -> None:
    store = PromptStore(any_db)
    first = store.push(feature, template("Be brief."), author="ana", message="first")
    assert first.created and first.version.version == 1
    # A feature's first version is what it serves; latest follows every push.
    assert store.labels(feature) == {"latest": 1, "production": 1}
    second = store.push(feature, template("Be {{ tone }}.", temperature=0.2), author="bo")
    assert second.version.version == 2
    assert store.labels(feature) == {"latest": 2, "production": 1}
    assert store.label(feature, 2, "production", actor="ana") == 1
    assert store.get(feature, "production").version == 2
    assert store.get(feature, "v1").template.render() == [
        {"role": "system", "content": "Be brief."}
    ]
    got = store.get(feature, 2)
    assert (got.author, got.template.params) == ("bo", {"temperature": 0.2})
    assert got.template.variables() == ["tone"]


def test_pushing_the_same_content_again_makes_no_version(any_db: Database, feature: str) -> None:
    store = PromptStore(any_db)
    store.push(feature, template("A"), author="ana")
    again = store.push(feature, template("A"), author="ci")
    assert not again.created and again.version.version == 1
    assert [v.version for v in store.versions(feature)] == [1]
    store.push(feature, template("B"), author="ana")
    # The same content again with a label: no version, the label moves to the latest.
    assert not store.push(feature, template("B"), author="ci", labels=("candidate",)).created
    assert store.labels(feature) == {"candidate": 2, "latest": 2, "production": 1}


def test_a_config_prompt_equal_to_a_pushed_version_serves_that_version(
    any_db: Database, feature: str
) -> None:
    store = PromptStore(any_db)
    store.seed_from_config(feature, "A")
    store.push(feature, PromptTemplate((("system", "B"),)), author="ana")
    assert store.seed_from_config(feature, "B") is not None  # the file now says B
    assert store.get(feature, "production").version == 2


def test_unknown_versions_and_bad_labels_are_refused(any_db: Database, feature: str) -> None:
    store = PromptStore(any_db)
    with pytest.raises(PromptNotFound, match="no prompt versions"):
        store.get(feature, "production")
    store.push(feature, template("A"), author="ana")
    with pytest.raises(PromptNotFound, match="versions 1 to 1"):
        store.get(feature, 7)
    with pytest.raises(PromptNotFound):
        store.label(feature, 7, "candidate", actor="ana")
    with pytest.raises(InvalidRequest, match="moves by itself"):
        store.label(feature, 1, "latest", actor="ana")
    with pytest.raises(InvalidRequest, match="not a label"):
        store.label(feature, 1, "v2", actor="ana")
    assert store.labels(feature) == {"latest": 1, "production": 1}


def test_every_change_is_audited_and_bumps_the_generation(any_db: Database, feature: str) -> None:
    store = PromptStore(any_db)
    before = store.generation()
    store.push(feature, template("A"), author="ana", message="why")
    store.push(feature, template("B"), author="ana")
    store.label(feature, 2, "candidate", actor="bo")
    assert store.generation() > before
    entries = AuditLog(any_db).entries(subject=feature)
    assert [(e.action, e.actor) for e in entries] == [
        ("prompt.push", "ana"),
        ("prompt.label", "ana"),  # production, on the first push
        ("prompt.push", "ana"),
        ("prompt.label", "bo"),
    ]
    assert entries[0].detail["message"] == "why"
    assert entries[-1].detail == {"label": "candidate", "version": 2, "previous": None}


def test_config_prompt_is_version_1_until_a_pushed_one_is_in_production(
    any_db: Database, feature: str
) -> None:
    store = PromptStore(any_db)
    assert store.seed_from_config(feature, "You are helpful.") is not None
    assert store.seed_from_config(feature, "You are helpful.") is None  # a restart: no-op
    assert store.get(feature, "production").version == 1
    # The file changes while it still owns production: a new version, served.
    assert store.seed_from_config(feature, "You are kind.") is not None
    assert store.get(feature, "production").template.render()[0]["content"] == "You are kind."
    pushed = store.push(feature, template("Pushed"), author="ana").version
    store.label(feature, pushed.version, "production", actor="ana")
    # Now the store owns it: the file's prompt no longer moves production.
    assert store.seed_from_config(feature, "You are terse.") is None
    assert store.get(feature, "production").version == pushed.version


def test_concurrent_pushes_never_share_a_number(any_db: Database, feature: str) -> None:
    store = PromptStore(Database.open(any_db.url))  # its own connection, like another replica
    errors: list[BaseException] = []

    def push(i: int, on: PromptStore) -> None:
        try:
            on.push(feature, template(f"variant {i}"), author=f"w{i}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=push, args=(i, store if i % 2 else PromptStore(any_db)))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [v.version for v in store.versions(feature)] == list(range(1, 9))
    store.db.close()
