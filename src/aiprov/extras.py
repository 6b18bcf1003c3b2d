"""Optional dependencies: which extra of pyproject.toml installs a module, and the one error when one is missing.

Every place that imports an optional library goes through `require` (or turns the ImportError it caught into
`missing(...)`), so a missing module is always the same one line: `aiprov serve needs the api extra (uvicorn is not
installed): pip install 'aiprov[api]'`, exit 14.
"""

from __future__ import annotations

import importlib
import importlib.util

from aiprov.errors import MissingExtra

EXTRA_OF_MODULE = {
    "fastapi": "api",
    "starlette": "api",
    "uvicorn": "api",
    "orjson": "api",
    "prometheus_client": "api",
    "psycopg": "postgres",
    "psycopg_binary": "postgres",
    "psycopg_pool": "postgres",
    "procrastinate": "postgres",
    "web3": "chain",
    "eth_account": "chain",
    "eth_abi": "chain",
    "eth_utils": "chain",
    "hexbytes": "chain",
    "boto3": "s3",
    "botocore": "s3",
    "s3transfer": "s3",
    "sklearn": "ml",
    "scipy": "ml",
    "joblib": "ml",
    "numpy": "ml",
    "skops": "ml",
    "onnxruntime": "ml",
    "onnx": "ml",
    "pyarrow": "ml",
}
"""Top-level module -> the extra that installs it (every optional dependency in pyproject.toml, and theirs)."""


def extra_of(module: str) -> str | None:
    """The extra that installs `module` (a dotted name is looked up by its top-level package), or None."""
    return EXTRA_OF_MODULE.get(module.split(".", 1)[0])


def missing(subject: str, error: ImportError, default: str) -> MissingExtra:
    """The MissingExtra for an ImportError caught while `subject` imported an optional library.

    `default` is the module the caller tried, used when the error does not name one of ours (e.g. a broken install).
    """
    name = error.name or default
    extra = extra_of(name) or extra_of(default)
    if extra is None:
        raise ValueError(f"{default} is not an optional dependency of aiprov")
    return MissingExtra(subject, extra, name.split(".", 1)[0] if extra_of(name) else default)


def require(subject: str, *modules: str) -> None:
    """Import `modules`; raise MissingExtra naming the extra of the first one missing, e.g. for `aiprov serve`."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise missing(subject, e, module) from e


def require_installed(subject: str, *modules: str) -> None:
    """As `require` for top-level modules that only another process imports (a model worker): found, not imported.

    Importing scikit-learn costs this process a second or more and memory for nothing.
    """
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise missing(subject, ModuleNotFoundError(name=module), module)
