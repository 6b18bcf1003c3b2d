"""The `model-index` of a Hugging Face model card: the results a publisher states in README.md's front matter.

    ---
    model-index:
    - name: my-model
      results:
      - task: {type: tabular-classification}
        dataset: {name: Iris, type: iris}
        metrics:
        - {type: accuracy, value: 0.97}
    ---

Only what a claim needs is read: each result's dataset id (`type`, else `name`) and its numeric metrics. The card
is an uploaded file, so its front matter is bounded (MAX_FRONT_MATTER) and parsed with YAML's safe loader (no
tags, no objects); anything else is an InvalidInput naming the problem.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiprov.errors import InvalidInput

MAX_FRONT_MATTER = 64 * 1024
"""Bytes of front matter read at most (Hugging Face cards keep theirs far below this)."""

MAX_RESULTS = 100


@dataclass(frozen=True, slots=True)
class CardResult:
    """One result of a model-index: metrics on one dataset."""

    dataset: str
    metrics: tuple[tuple[str, float], ...]

    def metric_args(self) -> list[str]:
        """As `aiprov claim --metric` takes them: `NAME=VALUE`, the value exactly as the card gave it."""
        return [f"{name}={value!r}" for name, value in self.metrics]


def front_matter(text: str) -> str | None:
    """The YAML between a leading `---` line and the next `---` line, or None when the card has none."""
    if not text.startswith("---"):
        return None
    first, sep, rest = text.partition("\n")
    if first.strip() != "---" or not sep:
        return None
    end = 0
    for line in rest.splitlines(keepends=True):
        if line.rstrip("\r\n").strip() == "---":
            return rest[:end]
        end += len(line)
        if end > MAX_FRONT_MATTER:
            raise InvalidInput(f"the model card's front matter is over {MAX_FRONT_MATTER // 1024} KiB")
    raise InvalidInput("the model card's front matter has no closing `---` line")


def card_results(text: str) -> list[CardResult]:
    """The results of the card's model-index (empty when it has none). Raises InvalidInput when malformed."""
    import yaml

    matter = front_matter(text)
    if matter is None:
        return []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        meta = yaml.load(matter, Loader=loader)
    except yaml.YAMLError as e:
        raise InvalidInput(f"the model card's front matter is not YAML: {str(e).splitlines()[0]}") from None
    if meta is None:
        return []
    if not isinstance(meta, dict):
        raise InvalidInput("the model card's front matter is not a mapping")
    index = meta.get("model-index")
    if index is None:
        return []
    out: list[CardResult] = []
    for entry in _list(index, "model-index"):
        for result in _list(_dict(entry, "a model-index entry").get("results", []), "results"):
            out.append(_result(_dict(result, "a result")))
            if len(out) > MAX_RESULTS:
                raise InvalidInput(f"the model card states more than {MAX_RESULTS} results")
    return out


def _result(result: dict[str, Any]) -> CardResult:
    dataset = _dict(result.get("dataset"), "a result's dataset")
    name = dataset.get("type") or dataset.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("a result's dataset has no `type` or `name`")
    metrics: list[tuple[str, float]] = []
    for metric in _list(result.get("metrics", []), "metrics"):
        m = _dict(metric, "a metric")
        kind, value = m.get("type"), m.get("value")
        if not isinstance(kind, str) or not kind.strip():
            raise InvalidInput(f"a metric on {name} has no `type`")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidInput(f"the metric {kind} on {name} has no finite number as its `value`")
        metrics.append((kind.strip().lower(), float(value)))
    return CardResult(name.strip(), tuple(metrics))


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"`{what}` in the model card is not a list")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} in the model card's model-index is not a mapping")
    return value
