"""Assertions by promptfoo's type strings; each is ``(Context) -> Grade``.

``registry`` names them; the modules by concern register their handlers: ``text``
(equals, contains..., regex, word-count, levenshtein), ``structured`` (is-json,
contains-json, is-valid-openai-tools-call), ``overlap`` (rouge-n, bleu, similar),
``runtime`` (latency, cost, finish-reason), ``scripted`` (python, javascript),
``judged`` (llm-rubric, factuality, answer-relevance), ``grounded``
(context-faithfulness), ``refusal`` (is-refusal).
"""
