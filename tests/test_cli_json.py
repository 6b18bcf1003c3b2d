"""Every command takes `--json`; under it every error is one JSON problem object on stderr with a stable `code`;
without it an error is one line. A missing optional dependency is one line naming the extra that installs it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from tests.conftest import MakeModel
from tests.support.cli import cli

import aiprov
from aiprov.cli.main import app
from aiprov.errors import AiprovError, MissingExtra

ROOT = Path(__file__).resolve().parents[1]


def leaf_commands() -> list[tuple[str, object]]:
    """(command path, click command) of every command the app has, subcommands included, found by introspection."""
    found: list[tuple[str, object]] = []

    def walk(command: object, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.append((path, command))
            return
        for name, sub in subcommands.items():
            walk(sub, f"{path} {name}")

    walk(typer.main.get_command(app), "aiprov")
    return found


def test_the_command_walk_finds_the_commands_and_subcommands() -> None:
    paths = {path for path, _ in leaf_commands()}
    assert {"aiprov push", "aiprov serve", "aiprov log checkpoint", "aiprov log key", "aiprov dataset add"} <= paths
    assert len(paths) > 30


@pytest.mark.parametrize("path", [path for path, _ in leaf_commands()])
def test_every_command_accepts_json(path: str) -> None:
    command = dict(leaf_commands())[path]
    options = {opt for param in getattr(command, "params", []) for opt in getattr(param, "opts", [])}
    assert "--json" in options, f"{path} has no --json"


def test_every_error_class_has_its_own_stable_code() -> None:
    def subclasses(cls: type[AiprovError]) -> list[type[AiprovError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    for module in pkgutil.walk_packages(aiprov.__path__, "aiprov."):  # every error class, whatever ran before
        if not module.name.endswith("__main__") and ".migrations" not in module.name:
            with contextlib.suppress(ImportError):
                importlib.import_module(module.name)
    classes = set(subclasses(AiprovError))
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(code.isidentifier() and code.islower() for code in codes)


def problem(err: str) -> dict[str, object]:
    """The one JSON problem object an error under --json writes to stderr."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    body = json.loads(lines[0])
    assert isinstance(body, dict)
    assert {"type", "title", "detail", "code", "exit_code"} <= body.keys(), body
    assert "Traceback" not in err
    return body


ERRORS = [
    (["show", "nobody/nothing"], "not_found", 3),
    (["show", "alice/m@x y"], "invalid_input", 2),
    (["usage", "nobody/nothing"], "not_found", 3),
    (["verify", "nobody/nothing"], "not_found", 3),
    (["alias", "nobody/nothing", "prod"], "not_found", 3),
    (["push", "/nonexistent/model", "--name", "alice/m"], "invalid_input", 2),
    (["push", "."], "usage_error", 2),
    (["log", "entry", "99999"], "not_found", 3),
    (["log", "proof", "--index", "x"], "usage_error", 2),
    (["dataset", "add", "/nonexistent.csv", "--name", "alice/d", "--target", "y"], "invalid_input", 2),
    (["eval", "--reproduce", "12345"], "not_found", 3),
]


@pytest.mark.parametrize(("args", "code", "exit_code"), ERRORS, ids=[" ".join(a[:2]) for a, _, _ in ERRORS])
def test_an_error_under_json_is_a_problem_object_on_stderr(
    home: Path, args: list[str], code: str, exit_code: int
) -> None:
    status, out, err = cli(home, *args, "--json")
    assert status == exit_code, err
    body = problem(err)
    assert (body["code"], body["exit_code"]) == (code, exit_code)
    assert out == ""


@pytest.mark.parametrize(("args", "code", "exit_code"), ERRORS, ids=[" ".join(a[:2]) for a, _, _ in ERRORS])
def test_an_error_without_json_is_one_line(home: Path, args: list[str], code: str, exit_code: int) -> None:
    status, _, err = cli(home, *args)
    assert status == exit_code
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_a_failed_verification_under_json_prints_the_report_and_a_problem(home: Path, make_model: MakeModel) -> None:
    root = make_model({"w.bin": b"weights"})
    assert cli(home, "push", str(root), "--name", "alice/m")[0] == 0
    (root / "w.bin").write_bytes(b"other")
    status, out, err = cli(home, "verify", "alice/m@1", "--path", str(root), "--json")
    assert status == 6
    assert json.loads(out)["ok"] is False
    body = problem(err)
    assert body["code"] == "verification_failed" and "verification failed:" in str(body["detail"])


def test_log_checkpoint_and_key_print_json(home: Path) -> None:
    status, out, _ = cli(home, "log", "checkpoint", "--json")
    checkpoint = json.loads(out)
    assert status == 0 and checkpoint["note"].startswith(checkpoint["origin"] + "\n")
    assert len(checkpoint["root"]) == 64 and isinstance(checkpoint["size"], int)
    status, out, _ = cli(home, "log", "key", "--json")
    key = json.loads(out)
    assert status == 0 and key["key"] == cli(home, "log", "key")[1].strip()
    assert key["key"].startswith(f"{key['name']}+{key['key_id']}+")


def run_without(module: str, home: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run `aiprov --home HOME ARGS…` in a fresh interpreter where `import MODULE` fails as if not installed."""
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from aiprov.cli.main import main\n"
        f"sys.argv = ['aiprov', '--home', {str(home)!r}, *{list(args)!r}]\n"
        "main()\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "AIPROV_ACTOR": "alice", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment, check=False
    )
    return result.returncode, result.stderr


def assert_extra_hint(status: int, err: str, extra: str) -> None:
    assert status == MissingExtra.exit_code, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert f"needs the {extra} extra" in err and err.rstrip().endswith(f"pip install 'aiprov[{extra}]'"), err


@pytest.mark.parametrize("module", ["uvicorn", "fastapi"])
def test_serve_without_the_api_extra_says_which_extra_to_install(home: Path, module: str) -> None:
    status, err = run_without(module, home, "serve", "--port", "0")
    assert_extra_hint(status, err, "api")
    assert err.startswith("error: aiprov serve needs the api extra")


def test_a_postgresql_url_without_psycopg_says_which_extra_to_install(home: Path) -> None:
    env = {"AIPROV_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    status, err = run_without("psycopg", home, "ls", env=env)
    assert_extra_hint(status, err, "postgres")


def test_an_s3_blob_store_without_boto3_says_which_extra_to_install(home: Path, tmp_path: Path) -> None:
    (tmp_path / "w.bin").write_bytes(b"weights")
    env = {"AIPROV_BLOBS": "s3://bucket/prefix"}
    status, err = run_without("boto3", home, "push", str(tmp_path / "w.bin"), "--name", "alice/m", env=env)
    assert_extra_hint(status, err, "s3")


def test_the_chain_without_web3_says_which_extra_to_install(home: Path) -> None:
    env = {"AIPROV_CHAIN_RPC": "http://127.0.0.1:1", "AIPROV_CHAIN_PRIVATE_KEY": "0x" + "11" * 32}
    status, err = run_without("web3", home, "chain", "deploy", env=env)
    assert_extra_hint(status, err, "chain")


def test_the_quickstart_without_scikit_learn_says_which_extra_to_install(tmp_path: Path) -> None:
    status, err = run_without("sklearn", tmp_path / "home", "quickstart")
    assert_extra_hint(status, err, "ml")


def test_a_dataset_without_pyarrow_says_which_extra_to_install(home: Path, tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("x,y\n1,0\n2,1\n")
    status, err = run_without("pyarrow", home, "dataset", "add", str(csv), "--name", "alice/d", "--target", "y")
    assert_extra_hint(status, err, "ml")


def test_a_missing_extra_under_json_is_a_problem_object(home: Path) -> None:
    status, err = run_without("uvicorn", home, "serve", "--json")
    assert status == MissingExtra.exit_code
    body = problem(err)
    assert body["code"] == "missing_extra" and body["hint"] == "pip install 'aiprov[api]'"


@pytest.mark.parametrize(("module", "fmt"), [("skops", "skops"), ("onnxruntime", "onnx"), ("joblib", "joblib")])
def test_evaluating_without_the_loader_says_which_extra_to_install(
    home: Path, tmp_path: Path, module: str, fmt: str
) -> None:
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)
    model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(x, y)
    path = tmp_path / f"model.{fmt}"
    if fmt == "skops":
        import skops.io

        skops.io.dump(model, path)
    elif fmt == "onnx":
        from skl2onnx import to_onnx

        path.write_bytes(to_onnx(model, x[:1].astype("float32")).SerializeToString())
    else:
        import joblib

        joblib.dump(model, path)
    assert cli(home, "push", str(path), "--name", f"alice/{fmt}")[0] == 0
    status, err = run_without(module, home, "eval", f"alice/{fmt}", "--benchmark", "iris")
    assert_extra_hint(status, err, "ml")


def test_serve_json_prints_one_line_with_its_url_at_start(home: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "aiprov", "--home", str(home), "serve", "--port", str(port), "--json"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=environment)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
    finally:
        server.terminate()
        server.wait(timeout=60)
    started = json.loads(line)
    assert started == {"url": f"http://127.0.0.1:{port}", "docs": f"http://127.0.0.1:{port}/docs", "workers": 1}
