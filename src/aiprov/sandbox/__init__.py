"""Sandboxed model execution: worker processes with time and memory limits load and run models, never the caller.

`WorkerPool` runs `ModelSpec`s (local files already verified and scanned); `SandboxedModels` turns registered
versions into specs. Importing this package is light: numpy, scikit-learn and onnxruntime load only in workers.
"""

from aiprov.errors import ModelExecutionError, ModelResourceError, ModelTimeout
from aiprov.sandbox.models import LOADABLE_FORMATS, SandboxedModels, materialize, model_spec
from aiprov.sandbox.pool import WorkerPool
from aiprov.sandbox.spec import Limits, ModelSpec, Prediction

__all__ = [
    "LOADABLE_FORMATS",
    "Limits",
    "ModelExecutionError",
    "ModelResourceError",
    "ModelSpec",
    "ModelTimeout",
    "Prediction",
    "SandboxedModels",
    "WorkerPool",
    "materialize",
    "model_spec",
]
