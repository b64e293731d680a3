"""Run a suite: every case × prompt × provider through the gateway, concurrently, graded.

    results = await run_suite(suite, gateway, judge_model="gpt-4o", concurrency=8)

``echo`` answers with the rendered prompt and never calls the gateway (promptfoo's echo
provider: handy to test assertions themselves). Results come back in suite order
whatever order the calls finish in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bounded.config.schema import BoundedConfig
from bounded.evals.assertions.overlap import embed
from bounded.evals.client import Gateway
from bounded.evals.errors import SuiteError
from bounded.evals.grading import CaseGrade, grade_case
from bounded.evals.model import Case, Output, Prompt, Provider, Suite
from bounded.evals.template import check, messages


@dataclass(slots=True)
class CaseResult:
    prompt_idx: int
    test_idx: int
    prompt: Prompt
    provider: Provider
    case: Case
    rendered: str
    output: Output
    graded: CaseGrade

    @property
    def passed(self) -> bool:
        return self.graded.passed

    @property
    def error(self) -> str | None:
        return self.graded.error

    def key(self) -> str:
        """Which case this is, across runs: test, prompt and provider."""
        return f"{self.case.key()} | {self.prompt.label} | {self.provider.label}"


class GatewayJudge:
    """A bounded model as the grader, called through the same gateway as the cases."""

    def __init__(self, gateway: Gateway, model: str | None):
        self.gateway = gateway
        self.model = model  # None: no judge configured (judged assertions then err)

    def using(self, provider: Any) -> GatewayJudge:
        """The judge an assertion or test names (``provider: openai:chat:NAME``)."""
        from bounded.evals.suite import provider_target

        pid = provider.get("id") if isinstance(provider, dict) else provider
        name = provider_target(pid) if isinstance(pid, str) else None
        return GatewayJudge(self.gateway, name or (pid if isinstance(pid, str) else None))

    async def complete(self, msgs: list[dict[str, str]]) -> tuple[str, dict[str, int]]:
        assert self.model is not None  # Context.need_judge checked
        out = await self.gateway.chat(self.model, msgs, {"temperature": 0})
        if out.error:
            raise RuntimeError(f"judge {self.model!r} failed: {out.error}")
        return out.text, out.tokens

    def embed(self, texts: list[str]) -> list[list[float]]:
        return embed(texts)


def preflight(suite: Suite, config: BoundedConfig | None) -> None:
    """Problems found before any call: bad templates, providers bounded does not know."""
    for prompt in suite.prompts:
        problem = check(prompt.raw)
        if problem:
            raise SuiteError(
                f"prompt {prompt.label[:60]!r} is not a valid template: {problem}",
                file=suite.path,
                hint="prompts are Nunjucks/Jinja templates: {{ var }}, {% if %}...{% endif %}",
            )
    if config is None:
        return
    known = set(config.features) | set(config.models)
    for provider in suite.providers:
        if not provider.echo and provider.target not in known:
            raise SuiteError(
                f"provider {provider.id!r}: no feature or model named {provider.target!r} "
                "in bounded.yaml",
                file=suite.path,
                hint=f"defined: {', '.join(sorted(known)) or 'none'}; or pass --target NAME",
            )


async def _answer(
    gateway: Gateway | None,
    provider: Provider,
    msgs: list[dict[str, Any]],
    version: str | None,
    variables: dict[str, Any],
) -> Output:
    if provider.echo:
        text = "\n".join(str(m.get("content", "")) for m in msgs)
        return Output(text=text, finish_reason="stop")
    if gateway is None:
        return Output(error="no gateway to call")
    return await gateway.chat(provider.target, msgs, provider.config, version, variables)


async def run_suite(
    suite: Suite,
    gateway: Gateway | None,
    *,
    judge_model: str | None = None,
    repeat: int = 1,
    concurrency: int = 4,
    prompt_version: str | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    judge = GatewayJudge(gateway, judge_model) if gateway is not None else None
    gate = asyncio.Semaphore(max(1, concurrency))
    jobs = [
        (pi, ti, prompt, provider, case)
        for ti, case in enumerate(suite.cases)
        for pi, prompt in enumerate(suite.prompts)
        for provider in suite.providers
    ]

    async def one(pi: int, ti: int, prompt: Prompt, provider: Provider, case: Case) -> CaseResult:
        async with gate:
            try:
                msgs = messages(prompt.raw, case.vars)
            except Exception as exc:  # a template that fails on these vars: this case errs
                output = Output(error=f"prompt did not render: {exc}")
                msgs = []
            else:
                output = await _answer(gateway, provider, msgs, prompt_version, case.vars)
            rendered = "\n".join(str(m.get("content", "")) for m in msgs)
            graded = await grade_case(
                case, output, prompt=rendered, provider=provider, base=suite.base,
                judge=judge, repeat=repeat,
            )  # fmt: skip
            result = CaseResult(pi, ti, prompt, provider, case, rendered, output, graded)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(*job) for job in jobs)))
