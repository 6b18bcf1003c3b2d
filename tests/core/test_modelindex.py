"""A model card's model-index read exactly, and every malformed or oversized card refused with a clear message."""

from __future__ import annotations

import pytest

from aiprov.core.modelindex import MAX_FRONT_MATTER, MAX_RESULTS, CardResult, card_results, front_matter
from aiprov.errors import InvalidInput

CARD = """---
license: mit
model-index:
- name: iris-lr
  results:
  - task: {type: tabular-classification}
    dataset: {name: Iris, type: iris}
    metrics:
    - {type: accuracy, value: 0.97}
    - {type: F1_Macro, value: 1}
  - dataset: {name: Wine only by name}
    metrics: [{type: accuracy, value: 0.9}]
---
# Iris

Text that is not YAML: { [ ---
"""


def test_the_results_of_a_card_are_its_datasets_and_numeric_metrics() -> None:
    assert card_results(CARD) == [
        CardResult("iris", (("accuracy", 0.97), ("f1_macro", 1.0))),
        CardResult("Wine only by name", (("accuracy", 0.9),)),
    ]
    assert CardResult("iris", (("accuracy", 0.97),)).metric_args() == ["accuracy=0.97"]


@pytest.mark.parametrize(
    "card",
    ["# no front matter\n", "", "---\nlicense: mit\n---\n", "---\n---\n", "--- not a fence\nmodel-index: 3\n"],
)
def test_a_card_without_a_model_index_states_nothing(card: str) -> None:
    assert card_results(card) == []


@pytest.mark.parametrize(
    ("card", "said"),
    [
        ("---\nmodel-index: []\n", "no closing `---`"),
        ("---\n- a list\n---\n", "not a mapping"),
        ("---\nmodel-index: {a: 1}\n---\n", "is not a list"),
        ("---\nmodel-index: [{results: [{metrics: []}]}]\n---\n", "dataset in the model card"),
        ("---\nmodel-index: [{results: [{dataset: {name: ' '}}]}]\n---\n", "has no `type` or `name`"),
        ("---\nmodel-index: [{results: [{dataset: {type: iris}, metrics: [{value: 1}]}]}]\n---\n", "no `type`"),
        (
            "---\nmodel-index: [{results: [{dataset: {type: iris}, metrics: [{type: a, value: .nan}]}]}]\n---\n",
            "finite",
        ),
        (
            "---\nmodel-index: [{results: [{dataset: {type: iris}, metrics: [{type: a, value: true}]}]}]\n---\n",
            "finite",
        ),
        ("---\nmodel-index: [{results: [{dataset: {type: iris}, metrics: [{type: a, value: '1'}]}]}]\n---\n", "finite"),
        ("---\nkey: [unclosed\n---\n", "is not YAML"),
        ("---\nx: !!python/object/apply:os.system ['true']\n---\n", "is not YAML"),
    ],
)
def test_a_malformed_model_index_is_refused_naming_the_problem(card: str, said: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        card_results(card)
    assert said in refused.value.message


def test_front_matter_is_read_up_to_its_limit_and_refused_past_it() -> None:
    line = "# " + "x" * 1021 + "\n"  # 1 KiB a line
    at_limit = "---\n" + line * (MAX_FRONT_MATTER // len(line)) + "---\nbody\n"
    assert front_matter(at_limit) is not None
    over = "---\n" + line * (MAX_FRONT_MATTER // len(line) + 1) + "---\n"
    with pytest.raises(InvalidInput, match="over 64 KiB"):
        front_matter(over)


def test_the_number_of_results_is_bounded_at_its_edge() -> None:
    def card(n: int) -> str:
        results = "".join(f"  - {{dataset: {{type: d{i}}}, metrics: []}}\n" for i in range(n))
        return f"---\nmodel-index:\n- results:\n{results}---\n"

    assert len(card_results(card(MAX_RESULTS))) == MAX_RESULTS
    with pytest.raises(InvalidInput, match="more than 100 results"):
        card_results(card(MAX_RESULTS + 1))
