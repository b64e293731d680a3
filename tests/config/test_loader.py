"""Loading bounded.yaml: env interpolation and errors that name their path."""

from __future__ import annotations

from pathlib import Path

import pytest

from bounded.config.loader import ConfigError, load_config, parse_config

GOOD = """
providers:
  openai: {kind: openai, base_url: "${BASE:-http://127.0.0.1:1/v1}", api_key: "${KEY}"}
models:
  gpt: {provider: openai, model: gpt-4o-mini, price: {input: 0.15, output: 0.6}}
features:
  support: {owner: team, route: {targets: [gpt]}}
"""


def test_env_values_and_defaults_are_interpolated() -> None:
    config = parse_config(GOOD, env={"KEY": "sk-test"})
    assert config.providers["openai"].api_key == "sk-test"
    assert config.providers["openai"].base_url == "http://127.0.0.1:1/v1"
    assert str(config.models["gpt"].price.output) == "0.6"


def test_unset_env_variable_names_path_and_variable() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(GOOD, env={})
    [problem] = info.value.problems
    assert problem.path == "providers.openai.api_key"
    assert "KEY" in problem.message
    assert "${KEY:-default}" in problem.hint


def test_every_problem_is_listed_with_its_path_and_a_hint() -> None:
    text = """
providers:
  local: {kind: local, timout_s: 3}
models:
  small: {provider: local, model: x}
features:
  support:
    owner: team
    route: {strategy: fastest, targets: [smal]}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    by_path = {p.path: p for p in info.value.problems}
    assert "did you mean 'timeout_s'" in by_path["providers.local.timout_s"].hint
    assert "ordered" in by_path["features.support.route.strategy"].message


def test_reference_errors_suggest_the_closest_name() -> None:
    text = GOOD.replace("targets: [gpt]", "targets: [gtp]")
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"KEY": "k"})
    [problem] = info.value.problems
    assert problem.path == "features.support.route.targets[0]"
    assert "did you mean 'gpt'" in problem.hint


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "bounded.yaml"
    path.write_text("providers:\n  local: {kind: local\n")
    with pytest.raises(ConfigError, match="line 3"):
        load_config(path)


def test_missing_file_has_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "--config" in info.value.problems[0].hint


def test_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "examples" / "bounded.yaml")
    assert "support-answer" in config.features
    assert config.providers["local"].kind == "local"


def test_empty_file_is_an_error_not_an_empty_config(tmp_path: Path) -> None:
    path = tmp_path / "bounded.yaml"
    path.write_text("\n")
    with pytest.raises(ConfigError, match="file is empty"):
        load_config(path)


def test_a_provider_url_without_a_scheme_or_a_header_with_a_newline_is_refused() -> None:
    text = """
providers:
  openai:
    kind: openai
    base_url: api.example.com/v1
    headers: {x-team: "a\\nx-admin: yes"}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    by_path = {p.path: p for p in info.value.problems}
    assert "http:// or https://" in by_path["providers.openai.base_url"].message
    assert "CR or LF" in by_path["providers.openai.headers"].message
