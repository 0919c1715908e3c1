"""What the dataset builder shows about each example: tokens, warnings, and the loss mask.

`lab.data.validate.check_dataset` finds duplicates, contradictions, empty text and examples over
`max_length`; this adds what only the mask shows: whether the end-of-turn token is trained.
If it is not (a template that leaves it out, or truncation that cuts it off) the model never
learns to stop talking.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..masks import token_preview
from ..records import Conversation
from .validate import Report, check_dataset

END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")  # ChatML, Llama 3, Gemma, Phi


@dataclass
class ExampleReview:
    tokens: int | None                # chat-templated length before truncation (None: no tokenizer)
    trained: int | None               # tokens that carry loss within max_length
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"tokens": self.tokens, "trained": self.trained, "warnings": self.warnings}


def end_of_turn_tokens(tokenizer) -> set[str]:
    """Token texts that close an assistant turn for this tokenizer's chat template."""
    return {t for t in (*END_OF_TURN, tokenizer.eos_token) if t}


def end_of_turn_problem(preview: list[tuple[str, bool]], eot: set[str],
                        max_length: int | None) -> str | None:
    """Why the last end-of-turn token is not trained, or None when it is.

    `preview` is the untruncated `token_preview`; truncation keeps the first `max_length`.

    >>> p = [("<|im_start|>", False), ("Hi", True), ("<|im_end|>", True), ("\\n", True)]
    >>> end_of_turn_problem(p, {"<|im_end|>"}, None) is None
    True
    >>> end_of_turn_problem(p, {"<|im_end|>"}, 2)
    'max_length 2 cuts off the end-of-turn token, so the model does not learn to stop here'
    """
    last = max((i for i, (text, trained) in enumerate(preview) if trained and text in eot), default=None)
    if last is None:
        return "the end-of-turn token is not trained, so the model does not learn to stop"
    if max_length is not None and last >= max_length:
        return f"max_length {max_length} cuts off the end-of-turn token, so the model does not learn to stop here"
    return None


def review(convs: list[Conversation], tokenizer=None, max_length: int | None = None,
           completion_only: bool = True) -> tuple[list[ExampleReview], Report]:
    """One `ExampleReview` per example, and the dataset's validation report.

    Warnings about the dataset as a whole stay in the report; those about one example are
    copied into its review (errors first, as "error: ...").
    """
    report = check_dataset(convs, tokenizer, max_length)
    reviews = [ExampleReview(None, None) for _ in convs]
    for label, issues in (("error: ", report.errors), ("", report.warnings)):
        for issue in issues:
            if issue.index is not None:
                reviews[issue.index].warnings.append(label + issue.message)
    if tokenizer is None:
        return reviews, report
    eot = end_of_turn_tokens(tokenizer)
    failed = {i.index for i in report.errors if i.kind == "template-error"}
    for i, (conv, rev) in enumerate(zip(convs, reviews)):
        if i in failed:
            continue
        try:
            preview = token_preview(conv, tokenizer, None, completion_only)
        except Exception as e:  # a template failing on one example is that example's problem
            rev.warnings.append(f"example {i + 1} cannot be rendered with the chat template: {e}")
            continue
        kept = preview[:max_length] if max_length else preview
        rev.tokens, rev.trained = len(preview), sum(trained for _, trained in kept)
        if conv.is_trainable and rev.trained:
            problem = end_of_turn_problem(preview, eot, max_length)
            if problem:
                rev.warnings.append(f"example {i + 1}: {problem}")
    return reviews, report
