"""Templates: rendered in Jinja2's sandbox with strict names; prompt files read with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounded.prompts import PromptRenderError, PromptTemplate, PromptVariableMissing
from bounded.prompts.files import (
    PromptFileError,
    dump_template,
    parse_prompt_text,
    read_prompt_file,
)

FILE = """\
description: support answers
system: |
  You help {{ customer }} with {{ product }}.
  {% if plan == "pro" %}Offer a call.{% endif %}
messages:
  - role: user
    content: "My plan is {{ plan }}."
  - role: assistant
    content: Noted.
params:
  temperature: 0.2
  max_tokens: 300
variables:
  product: bounded
  plan: free
"""


def test_a_file_renders_with_defaults_and_values() -> None:
    template = parse_prompt_text(FILE)
    assert template.variables() == ["customer", "plan", "product"]
    assert template.params == {"temperature": 0.2, "max_tokens": 300}
    messages = template.render({"customer": "Ana", "plan": "pro"})
    assert messages == [
        {"role": "system", "content": "You help Ana with bounded.\nOffer a call.\n"},
        {"role": "user", "content": "My plan is pro."},
        {"role": "assistant", "content": "Noted."},
    ]
    # Values are data, never templates: braces in a value are sent as typed.
    assert "{{ 7*7 }}" in template.render({"customer": "{{ 7*7 }}"})[0]["content"]


def test_dumped_file_reads_back_the_same_version() -> None:
    template = parse_prompt_text(FILE)
    again = parse_prompt_text(dump_template(template))
    assert again.digest == template.digest


def test_a_missing_variable_is_named() -> None:
    template = PromptTemplate.parse({"system": "Hi {{ customer }}, {{ order.id }}"})
    with pytest.raises(PromptVariableMissing) as caught:
        template.render({})
    assert caught.value.param == "bounded.vars.customer"
    assert "'customer'" in caught.value.message and "extra_body" in caught.value.message
    with pytest.raises(PromptVariableMissing, match="no attribute 'id'"):
        template.render({"customer": "Ana", "order": {}})


def test_the_sandbox_refuses_python_internals() -> None:
    template = PromptTemplate.parse({"system": "{{ name.__class__.__mro__ }}"})
    with pytest.raises((PromptRenderError, PromptVariableMissing)):
        template.render({"name": "x"})
    mutate = PromptTemplate.parse({"system": "{{ items.append(1) }}"})
    with pytest.raises(PromptRenderError, match="sandbox"):
        mutate.render({"items": []})


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("system: |\n  Hi\n  {{ name }\n", 3, "template syntax error"),
        ("system: hi\nmessages:\n  - role: robot\n    content: x\n", 3, "messages[0].role"),
        ("system: hi\nparams:\n  temperature: 9\n", 3, "params.temperature"),
        ("system: hi\nparams: {model: gpt-4o}\n", 2, "params.model"),
        ("sytem: hi\n", 1, "sytem: is not a prompt field"),
        ("system: [unclosed\n", 2, "YAML syntax error"),
        ("description: nothing\n", 1, "needs a system template"),
    ],
)
def test_bad_files_say_file_line_and_why(text: str, line: int, says: str) -> None:
    with pytest.raises(PromptFileError) as caught:
        parse_prompt_text(text, "support.yaml")
    assert caught.value.file == "support.yaml"
    assert caught.value.line == line
    assert says in caught.value.message


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PromptFileError, match="no such file"):
        read_prompt_file(tmp_path / "absent.yaml")
