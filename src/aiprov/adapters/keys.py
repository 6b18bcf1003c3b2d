"""Key files: the log's Ed25519 note key, written once with mode 0600."""

from __future__ import annotations

import os
from pathlib import Path

from aiprov.core.note import Signer
from aiprov.errors import InvalidInput, NotFound


def write_private(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 (never readable by others, not even for an instant); refuse to overwrite."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists; refusing to overwrite a key") from None
    except OSError as e:
        raise InvalidInput(f"cannot create {path}: {e.strerror}") from e
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def create_log_signer(path: Path, origin: str) -> Signer:
    """Generate the log key named `origin` and store it at `path` (mode 0600)."""
    signer = Signer.generate(origin)
    write_private(path, (signer.to_skey() + "\n").encode())
    return signer


def read_log_signer(path: Path) -> Signer:
    """Read the log's signer key. Raises NotFound or InvalidInput with the path, never the key."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise NotFound(f"no log key at {path}", hint="run `aiprov init`") from None
    except OSError as e:
        raise InvalidInput(f"cannot read the log key {path}: {e.strerror}") from e
    try:
        return Signer.parse(text)
    except InvalidInput as e:
        raise InvalidInput(f"{path} is not a note signer key: {e.message}") from None
