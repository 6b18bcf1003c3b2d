"""Settings (environment `AIPROV_*`) and the container that wires ports to adapters, in one place."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from aiprov.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from aiprov.adapters.blob_local import LocalBlobStore
    from aiprov.adapters.db.registry import SqlRegistry
    from aiprov.services.registry import RegistryService


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


class Settings(BaseSettings):
    """Configuration; every field can be set as `AIPROV_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AIPROV_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".aiprov")
    database_url: str | None = None
    """SQLAlchemy URL; default `sqlite:///<home>/registry.db`. PostgreSQL: postgresql://user@host/db."""
    actor: str = Field(default_factory=_default_actor)
    """Who is recorded as the author of pushes and the actor of events."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.home / "blobs"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Container:
    """The wired application: built once per process (CLI command, API app, test)."""

    settings: Settings
    clock: Callable[[], datetime] = field(default=utc_now)

    def require_home(self) -> None:
        """Raise NotFound unless `aiprov init` created the home (or a database URL points elsewhere)."""
        home = self.settings.home
        if not home.is_dir():
            raise NotFound(f"no aiprov home at {home}", hint="run `aiprov init` or set AIPROV_HOME")

    @cached_property
    def blobs(self) -> LocalBlobStore:
        from aiprov.adapters.blob_local import LocalBlobStore

        return LocalBlobStore(self.settings.blob_dir)

    @cached_property
    def db(self) -> SqlRegistry:
        from aiprov.adapters.db.engine import make_engine
        from aiprov.adapters.db.registry import SqlRegistry

        return SqlRegistry(make_engine(self.settings.resolved_database_url))

    @cached_property
    def registry(self) -> RegistryService:
        from aiprov.adapters.db.engine import check_schema
        from aiprov.services.registry import RegistryService

        self.require_home()
        check_schema(self.db.engine)
        return RegistryService(self.db, self.blobs, clock=self.clock, actor=self.settings.actor)

    def init(self) -> str | None:
        """Create the home and the schema (or upgrade it); return the schema revision found before."""
        from aiprov.adapters.db.engine import migrate

        home = self.settings.home
        try:
            home.mkdir(parents=True, exist_ok=True)
            self.settings.blob_dir.mkdir(exist_ok=True)
        except OSError as e:
            raise InvalidInput(f"cannot create the aiprov home at {home}: {e.strerror}") from e
        os.chmod(home, 0o700)
        return migrate(self.db.engine)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.engine.dispose()


def load_container(home: Path | None = None) -> Container:
    """The container for the environment, with `home` overriding AIPROV_HOME."""
    settings = Settings() if home is None else Settings(home=home)
    return Container(settings)
