"""``Project``: a project directory's settings and definitions, and the backends they name.

A thin facade: it knows where things are and delegates the work to the definitions
loader, the config loader and the backend registry.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from rtml.backends.registry import open_backend
from rtml.config import CONFIG_FILE, RtmlConfig, load_config
from rtml.definitions.loader import Definitions, load_definitions
from rtml.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from rtml.backends.event_log.base import EventLog

EXAMPLE_DIR = Path(__file__).resolve().parent / "examples" / "ecommerce"

# Topics of the pipeline, below the project's name: <project>.events.raw, ...
RAW_EVENTS = "events.raw"
VALID_EVENTS = "events.valid"
INVALID_EVENTS = "events.invalid"


@dataclass
class Project:
    root: Path
    config: RtmlConfig
    _environ: Mapping[str, str] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, directory: str | Path = ".", environ: Mapping[str, str] | None = None) -> Project:
        root = Path(directory).resolve()
        if not (root / CONFIG_FILE).is_file():
            raise ConfigError(
                f"{root} is not an rtml project (no {CONFIG_FILE}). "
                "Fix: run `rtml init DIR` to make one, or pass --project DIR"
            )
        return cls(root=root, config=load_config(root, environ), _environ=environ)

    @cached_property
    def definitions(self) -> Definitions:
        return load_definitions(self.root)

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir

    def topic(self, name: str) -> str:
        return self.config.topic(name)

    def event_log(self) -> EventLog:
        """Open the configured event log (the caller closes it)."""
        log: EventLog = open_backend("event_log", self.config.event_log)
        return log


def init_project(directory: Path, *, force: bool = False) -> Path:
    """Copy the example project into ``directory`` (which must be empty unless ``force``)."""
    if directory.exists() and any(directory.iterdir()) and not force:
        raise InvalidInputError(
            f"{directory} is not empty. Fix: pick a new directory, or pass --force to overwrite"
        )
    shutil.copytree(
        EXAMPLE_DIR,
        directory,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".rtml", "__pycache__", "*.pyc"),
    )
    return directory
