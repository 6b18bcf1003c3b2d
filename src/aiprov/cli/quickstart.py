"""`aiprov quickstart`: the seed's step-by-step demo in one go."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from aiprov.cli.common import handle_errors, local_container, out_console, print_json


def register(app: typer.Typer) -> None:
    app.command()(quickstart)


@handle_errors
def quickstart(
    ctx: typer.Context,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train the demo Iris classifier, push it as demo/iris-classifier, evaluate it on Iris, list the registry.

    Creates the aiprov home if needed. Running it again deduplicates: same bytes, same version.
    """
    from aiprov.records import ModelFilter
    from aiprov.services.demo import DEMO_DESCRIPTION, DEMO_NAME, DEMO_PARAMS, train_demo_model
    from aiprov.services.registry import PushRequest

    c = local_container(ctx)
    c.init()

    def say(text: str) -> None:
        if not json:
            out_console.print(text, soft_wrap=True)

    say(f"[bold]1. init[/]   aiprov home at {c.settings.home}")
    with tempfile.TemporaryDirectory(prefix="aiprov-quickstart-") as tmp:
        demo = train_demo_model(Path(tmp) / "iris-classifier")
        say(f"[bold]2. train[/]  DecisionTree on the iris train split, training accuracy {demo.train_accuracy:.3f}")
        result = c.registry.push(
            demo.directory,
            PushRequest(
                name=DEMO_NAME,
                description=DEMO_DESCRIPTION,
                license="CC0-1.0",
                tags=["demo", "sklearn", "classification"],
                datasets=["sklearn:iris"],
                params=DEMO_PARAMS,
                metadata={"train_accuracy": demo.train_accuracy, "sklearn_version": demo.sklearn_version},
            ),
        )
    v = result.version
    state = "already registered as" if result.deduplicated else "registered as"
    say(f"[bold]3. push[/]   {state} {v.ref}  {v.manifest.digest}")
    evaluation = c.evaluation.evaluate(v.ref, benchmark="iris")
    metrics = ", ".join(f"{k} {evaluation.metrics[k]:.3f}" for k in ("accuracy", "f1_macro") if k in evaluation.metrics)
    say(f"[bold]4. eval[/]   iris test split (sandboxed worker): {metrics}  (evaluation {evaluation.id})")
    models = c.registry.list(ModelFilter())
    if json:
        print_json(
            {"push": result.to_json(), "evaluation": evaluation.to_json(), "models": [m.to_json() for m in models]}
        )
        return
    say("[bold]5. ls[/]")
    for m in models:
        latest = m.latest
        say(f"   {m.full_name:<32} v{latest.number if latest else '-'}  {m.description}")
    say(
        f"\nNext: `aiprov show {v.ref}`, `aiprov eval --reproduce {evaluation.id}`, `aiprov pull {v.ref} ./out`, "
        f"`aiprov usage {v.full_name}`"
    )
