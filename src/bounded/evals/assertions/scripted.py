"""python assertions: an inline expression (or a function body with ``return``), or
``file://check.py`` (``get_assert(output, context)``, or ``file://check.py:name``).
The result may be a bool, a score, or a ``{pass, score, reason}`` dict, read as
promptfoo reads it. javascript is not run: no embedded JS engine ships with bounded.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from bounded.evals.assertions.base import Context, Grade, Misconfigured
from bounded.evals.assertions.registry import register
from bounded.evals.yamlio import FILE

_modules: dict[Path, ModuleType] = {}
_lock = threading.Lock()


def _module(path: Path) -> ModuleType:
    with _lock:
        if path not in _modules:
            spec = importlib.util.spec_from_file_location(
                f"bounded_eval_check_{len(_modules)}", path
            )
            if spec is None or spec.loader is None or not path.is_file():
                raise Misconfigured(f"python assertion file not found: {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            _modules[path] = module
        return _modules[path]


def _inline(code: str) -> Any:
    body = code if "\n" in code else f"return {code}"
    source = "import json\n\ndef main(output, context):\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "<python assertion>", "exec"), namespace)  # the suite's own code
    return namespace["main"]


def _call(ctx: Context) -> Any:
    value = ctx.value
    if not isinstance(value, str):
        raise Misconfigured("python assertion must have a string value")
    context = {
        "prompt": ctx.prompt,
        "vars": ctx.case.vars,
        "test": ctx.case.raw,
        "config": ctx.spec.config,
        "provider": {"id": ctx.provider.id, "label": ctx.provider.label},
        "providerResponse": {"output": ctx.output.graded_value(), "cost": ctx.output.cost},
    }
    if value.startswith(FILE):
        target = value[len(FILE) :]
        name = "get_assert"
        if ":" in Path(target).name:
            target, name = target.rsplit(":", 1)
        path = Path(target) if Path(target).is_absolute() else ctx.base / target
        fn = getattr(_module(path), name, None)
        if fn is None:
            raise Misconfigured(f"{path} has no function {name}()")
    else:
        fn = _inline(value)
    return fn(ctx.output.graded_value(), context)


def normalize(ctx: Context, result: Any) -> Grade:
    threshold = ctx.spec.threshold
    if isinstance(result, str):
        lowered = result.strip().lower()
        if lowered in ("true", "false"):
            result = lowered == "true"
        elif result.strip().startswith("{"):
            result = json.loads(result)
        else:
            try:
                result = float(result)
            except ValueError:
                raise Misconfigured(
                    f"python assertion must return a boolean, number, or {{pass, score, reason}} "
                    f"object, not {result!r}"
                ) from None
    if isinstance(result, bool):
        passed = result != ctx.inverse
        return Grade(
            passed,
            float(passed),
            "Assertion passed" if passed else f"Python code returned {str(result).lower()}",
        )
    if isinstance(result, int | float):
        raw = result > 0 if threshold is None else result >= threshold
        passed = raw != ctx.inverse
        return Grade(
            passed,
            float(result),
            "Assertion passed" if passed else f"Python code returned {str(raw).lower()}",
        )
    if isinstance(result, dict) and "pass" in result:
        passed = bool(result["pass"])
        score = float(result.get("score", 1.0 if passed else 0.0))
        reason = str(result.get("reason", ""))
        if threshold is not None and score < threshold:
            passed = False
            reason = f"Python score {score:g} is less than threshold {threshold:g}: {reason}"
        passed = passed != ctx.inverse
        return Grade(
            passed, score, reason or ("Assertion passed" if passed else "Python check failed")
        )
    raise Misconfigured(
        "python assertion must return a boolean, number, or {pass, score, reason} object, "
        f"not {result!r}"
    )


@register("python")
async def python(ctx: Context) -> Grade:
    try:
        result = await asyncio.to_thread(_call, ctx)
    except Misconfigured:
        raise
    except Exception as exc:
        return Grade(False, 0.0, f"Python code execution failed: {type(exc).__name__}: {exc}")
    return normalize(ctx, result)


@register("javascript")
def javascript(ctx: Context) -> Grade:
    name = ctx.case.description or "(no description)"
    file, line = ctx.spec.where
    at = f" at {file}:{line}" if file else ""
    raise Misconfigured(
        f"javascript assertions are not supported by bounded (test {name!r}{at}); "
        "rewrite it as a python assertion (same output and context arguments)"
    )
