"""`aiprov push --claims-from-card`: a model card's model-index becomes claims that auditors can check."""

from __future__ import annotations

from pathlib import Path

from tests.support.audits import iris_model, log_size, run, run_json


def card(accuracy: float, *extra: str) -> str:
    results = "".join(extra)
    return (
        "---\nlicense: mit\nmodel-index:\n- name: iris\n  results:\n"
        f"  - dataset: {{name: Iris, type: iris}}\n    metrics: [{{type: accuracy, value: {accuracy!r}}}]\n"
        f"{results}---\n# An iris classifier\n"
    )


def test_the_cards_results_become_claims_and_an_audit_checks_them(home: Path, tmp_path: Path) -> None:
    model = iris_model(tmp_path / "m", good=True)
    run_json(home, "alice", "push", str(model), "--name", "alice/iris")
    accuracy = run_json(home, "alice", "eval", "alice/iris", "--benchmark", "iris")["metrics"]["accuracy"]
    unknown = "  - dataset: {type: nobody/nothing}\n    metrics: [{type: accuracy, value: 0.5}]\n"
    odd = "  - dataset: {type: iris}\n    metrics: [{type: bleu, value: 0.5}]\n"
    (model / "README.md").write_text(card(accuracy, unknown, odd))

    pushed = run_json(home, "alice", "push", str(model), "--name", "alice/iris", "--claims-from-card")
    (made,) = pushed["card_claims"]["claims"]
    assert (made["publisher"], made["dataset"], made["metrics"]) == ("alice", "sklearn:iris", {"accuracy": accuracy})
    assert made["digest"] == pushed["digest"]
    skipped = {s["dataset"]: s["reason"] for s in pushed["card_claims"]["skipped"]}
    assert set(skipped) == {"nobody/nothing", "iris"} and "bleu" in skipped["iris"]
    assert run_json(home, "bob", "audit", str(made["id"]))["verdict"] == "confirmed"


def test_without_the_flag_or_a_model_index_nothing_is_claimed(home: Path, tmp_path: Path) -> None:
    model = iris_model(tmp_path / "m", good=True)
    (model / "README.md").write_text(card(0.99))
    before = log_size(home)
    pushed = run_json(home, "alice", "push", str(model), "--name", "alice/iris")
    assert "card_claims" not in pushed and log_size(home) == before + 1  # the push alone
    (model / "README.md").write_text("# no front matter\n")
    again = run_json(home, "alice", "push", str(model), "--name", "alice/iris", "--claims-from-card")
    assert again["card_claims"] == {"claims": [], "skipped": []}


def test_a_malformed_card_is_reported_in_one_line_and_the_push_still_stands(home: Path, tmp_path: Path) -> None:
    model = iris_model(tmp_path / "m", good=True)
    (model / "README.md").write_text("---\nmodel-index: [unclosed\n---\n")
    ran = run(home, "alice", "push", str(model), "--name", "alice/iris", "--claims-from-card")
    assert ran.code == 0
    (line,) = [x for x in ran.err.splitlines() if x.startswith("model card")]
    assert "not YAML" in line
    assert run_json(home, "alice", "show", "alice/iris")["version"] == 1
