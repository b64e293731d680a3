"""Eval throughput: cases/s for 200 deterministic cases through the gateway against the
stand-in upstream, ``bounded eval run -j 8`` vs ``promptfoo eval -j 8`` on the same suite.

    .venv/bin/python bench/eval_throughput.py --promptfoo /tmp/pf/node_modules/.bin/promptfoo \
        [--node-bin /tmp/node22/node_modules/.bin] [--cases 200] [-j 8] [--rounds 3]

The suite is one promptfoo config used by both: provider ``openai:chat:stub`` with
``config.apiBaseUrl`` at the stand-in (promptfoo calls it directly; bounded routes its
model ``stub`` through the gateway to the same stand-in, and ignores ``apiBaseUrl``).
Each case is graded by three assertions (icontains, regex, word-count). Both tools run as
a fresh process each round (start-up included), interleaved; figures are medians.
Without --promptfoo only bounded is measured. promptfoo 0.123 needs Node >= 22.22.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def suite(n: int, base_url: str) -> dict[str, object]:
    return {
        "description": "throughput",
        "prompts": ["Question {{i}}: what is the capital of France?"],
        "providers": [
            {"id": "openai:chat:stub", "config": {"apiBaseUrl": base_url, "apiKey": "x"}}
        ],
        "tests": [
            {
                "vars": {"i": i},
                "assert": [
                    {"type": "icontains", "value": "paris"},
                    {"type": "regex", "value": "^The capital"},
                    {"type": "word-count", "value": {"max": 10}},
                ],
            }
            for i in range(n)
        ],
    }


def start_standin() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "standin_upstream.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    return proc, int(line[-1])


def timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.returncode, done.stdout[-400:] + done.stderr[-400:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promptfoo", help="path to the promptfoo executable")
    parser.add_argument("--node-bin", help="a folder with node >= 22 (put first on PATH)")
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("-j", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    standin, port = start_standin()
    tmp = Path(tempfile.mkdtemp(prefix="eval-bench-"))
    try:
        base = f"http://127.0.0.1:{port}/v1"
        (tmp / "promptfooconfig.yaml").write_text(yaml.safe_dump(suite(args.cases, base)))
        (tmp / "bounded.yaml").write_text(
            yaml.safe_dump(
                {
                    "server": {"store": f"sqlite:///{tmp / 'b.db'}", "reload": False},
                    "providers": {"up": {"kind": "openai", "base_url": base, "api_key": "x"}},
                    "models": {"stub": {"provider": "up", "model": "stub-model"}},
                }
            )
        )
        env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
               "PROMPTFOO_PASS_RATE_THRESHOLD": "100"}  # fmt: skip
        if args.node_bin:
            env["PATH"] = args.node_bin + os.pathsep + env["PATH"]
        bounded = [str(Path(sys.executable).parent / "bounded"), "eval", "run",
                   "promptfooconfig.yaml", "-c", "bounded.yaml", "-j", str(args.j),
                   "-o", "bounded.json"]  # fmt: skip
        promptfoo = [args.promptfoo, "eval", "-c", "promptfooconfig.yaml", "-j", str(args.j),
                     "--no-cache", "--no-table", "--no-progress-bar", "-o", "pf.json"]  # fmt: skip
        walls: dict[str, list[float]] = {"bounded": [], "promptfoo": []}
        inner: dict[str, list[float]] = {"bounded": [], "promptfoo": []}
        for _ in range(args.rounds):
            for name, cmd in (("bounded", bounded), ("promptfoo", promptfoo)):
                if name == "promptfoo" and not args.promptfoo:
                    continue
                wall, code, tail = timed(cmd, env, tmp)
                if code != 0:
                    sys.exit(f"{name} exited {code}:\n{tail}")
                walls[name].append(wall)
                if name == "bounded":
                    report = json.loads((tmp / "bounded.json").read_text())
                    inner[name].append(report["bounded"]["duration_ms"] / 1000)
                    assert report["results"]["stats"]["successes"] == args.cases
                else:
                    report = json.loads((tmp / "pf.json").read_text())
                    stats = report["results"]["stats"]
                    assert stats["successes"] == args.cases, stats
                    if "durationMs" in stats:
                        inner[name].append(stats["durationMs"] / 1000)
        out: dict[str, object] = {"cases": args.cases, "concurrency": args.j, "rounds": args.rounds}
        for name in walls:
            if walls[name]:
                out[f"{name}_wall_s"] = round(statistics.median(walls[name]), 3)
                out[f"{name}_cases_per_s"] = round(args.cases / statistics.median(walls[name]), 1)
            if inner[name]:
                out[f"{name}_eval_s"] = round(statistics.median(inner[name]), 3)
                out[f"{name}_eval_cases_per_s"] = round(
                    args.cases / statistics.median(inner[name]), 1
                )
        if walls["promptfoo"]:
            out["ratio_cases_per_s_bounded_over_promptfoo"] = round(
                statistics.median(walls["promptfoo"]) / statistics.median(walls["bounded"]), 2
            )
            if inner["promptfoo"] and inner["bounded"]:
                out["ratio_eval_only"] = round(
                    statistics.median(inner["promptfoo"]) / statistics.median(inner["bounded"]), 2
                )
        print(json.dumps(out, indent=2))
    finally:
        standin.terminate()
        standin.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
