"""JUnit XML: one ``<testsuite>`` per provider and prompt, one ``<testcase>`` per case,
a ``<failure>`` for each failed case and an ``<error>`` for each that could not run."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from bounded.evals.runner import CaseResult


def junit_xml(name: str, results: Sequence[CaseResult]) -> str:
    root = ET.Element("testsuites", name=name)
    groups: dict[tuple[str, str], list[CaseResult]] = {}
    for r in results:
        groups.setdefault((r.provider.label, r.prompt.label), []).append(r)
    for (provider, prompt), rows in groups.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{provider} | {prompt[:80]}",
            tests=str(len(rows)),
            failures=str(sum(not r.passed and r.error is None for r in rows)),
            errors=str(sum(r.error is not None for r in rows)),
            time=f"{sum(r.output.latency_ms for r in rows) / 1000:.3f}",
        )
        for r in rows:
            case = ET.SubElement(
                suite,
                "testcase",
                name=r.case.description or r.case.key()[:120],
                classname=f"{provider}.{r.test_idx}",
                time=f"{r.output.latency_ms / 1000:.3f}",
            )
            if r.error is not None:
                ET.SubElement(case, "error", message=r.error[:500]).text = r.error
            elif not r.passed:
                failed = [c for c in r.graded.grade.components if not c.passed]
                detail = "\n".join(
                    f"{(c.assertion or {}).get('type', '?')}: {c.reason}" for c in failed
                )
                ET.SubElement(
                    case, "failure", message=r.graded.grade.reason[:500]
                ).text = f"{detail}\n--- output ---\n{r.output.as_string()}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
