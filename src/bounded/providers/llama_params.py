"""Model parameters llama-cpp-python does not let ``Llama(...)`` set.

``use_extra_bufts``: llama.cpp repacks weights into "extra" CPU buffer types, among them
Intel AMX tiles where the CPU has them. On some of this project's machines (Sapphire Rapids, AMX
present) a llama-cpp-python 0.3.36 build compiled with ``-march=native`` crashes with a
segfault inside ``ggml_backend_amx_mul_mat`` on the first decode. The plain CPU kernels
are what the 135M default model needs anyway, so bounded turns the extra buffers off.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

_patch_lock = threading.Lock()


@contextlib.contextmanager
def without_extra_buffers() -> Iterator[None]:
    """Within the block, ``llama_cpp.Llama`` builds its model params with
    ``use_extra_bufts = False`` (it reads them from ``llama_model_default_params()``)."""
    from llama_cpp import llama as llama_module

    binding: Any = llama_module.llama_cpp
    original = binding.llama_model_default_params

    def defaults() -> Any:
        params = original()
        if hasattr(params, "use_extra_bufts"):  # older builds have neither field nor AMX path
            params.use_extra_bufts = False
        return params

    with _patch_lock:
        binding.llama_model_default_params = defaults
        try:
            yield
        finally:
            binding.llama_model_default_params = original
