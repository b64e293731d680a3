"""Two versions side by side: a unified diff of their prompt files."""

from __future__ import annotations

import difflib

from bounded.prompts.files import dump_template
from bounded.prompts.store import PromptVersion


def diff_versions(old: PromptVersion, new: PromptVersion) -> list[str]:
    """Lines of a unified diff (empty when the two are the same)."""
    return list(
        difflib.unified_diff(
            dump_template(old.template).splitlines(),
            dump_template(new.template).splitlines(),
            fromfile=f"{old.feature} v{old.version} ({old.author})",
            tofile=f"{new.feature} v{new.version} ({new.author})",
            lineterm="",
        )
    )
