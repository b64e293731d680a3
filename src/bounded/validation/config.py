"""A feature's validation policy as declared in ``bounded.yaml``.

Example::

    features:
      invoice-extract:
        risk_tier: high
        output:
          schema: schemas/invoice.json     # relative to the working directory, or inline
          on_fail: repair                  # repair | escalate | block | log
          max_repairs: 2
        guards:
          input:     [{kind: pii, action: redact, restore: true}, {kind: secrets, action: block}]
          retrieved: [{kind: injection, action: drop}]
          output:    [{kind: pii, action: redact}, {kind: groundedness, min_score: 0.5}]
        tools: {allow: [lookup_order], validate_arguments: true}

A list left out takes its risk tier's default (:mod:`bounded.validation.policy`); an
empty list means none. These models import nothing but pydantic, so ``config.schema``
can use them without cycles.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

GuardAction = Literal["allow", "log", "redact", "block", "drop", "escalate"]

# Which actions make sense where. ``drop`` removes a retrieved chunk; ``escalate`` asks the
# next route target for another answer, so it only exists for output.
ACTIONS_BY_PLACE: dict[str, tuple[str, ...]] = {
    "input": ("allow", "log", "redact", "block"),
    "retrieved": ("allow", "log", "redact", "drop", "block"),
    "output": ("allow", "log", "redact", "block", "escalate"),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class GuardSpec(_Frozen):
    """One guard: a detector by ``kind``, and what to do when it finds something."""

    kind: str = Field(description="pii, secrets, injection, groundedness, or a registered kind")
    action: GuardAction = "log"
    restore: bool = Field(
        False, description="redact on input only: put the real values back into the reply"
    )
    threshold: float | None = Field(
        None, ge=0, le=1, description="scored detectors (injection): flag at or above this"
    )
    min_score: float | None = Field(
        None, ge=0, le=1, description="groundedness: act when the answer scores below this"
    )
    entities: tuple[str, ...] | None = Field(None, description="pii: which kinds to look for")
    on_error: Literal["open", "closed"] | None = Field(
        None,
        description="if the detector itself fails: let the text through (open) or refuse "
        "the request (closed); default per kind",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="detector-specific")

    def detector_options(self) -> dict[str, Any]:
        options = dict(self.options)
        for name in ("threshold", "min_score", "entities"):
            value = getattr(self, name)
            if value is not None:
                options[name] = list(value) if isinstance(value, tuple) else value
        return options


class GuardsConfig(_Frozen):
    input: tuple[GuardSpec, ...] | None = None
    retrieved: tuple[GuardSpec, ...] | None = None
    output: tuple[GuardSpec, ...] | None = None


class OutputConfig(_Frozen):
    """What the reply must be. ``schema`` goes to the provider as ``response_format``."""

    schema_: str | dict[str, Any] | None = Field(
        None,
        alias="schema",
        description="a JSON Schema file (relative to the working directory) or inline",
    )
    on_fail: Literal["repair", "escalate", "block", "log"] = "repair"
    max_repairs: int = Field(2, ge=0, le=5)
    # The file the schema was read from, for `config check --explain` (set by the loader).
    _schema_file: str | None = PrivateAttr(None)

    @property
    def schema_file(self) -> str | None:
        return self._schema_file


class ToolsConfig(_Frozen):
    allow: tuple[str, ...] | None = Field(None, description="tool names a reply may call")
    validate_arguments: bool = Field(True, description="against the tools the request declared")
