"""examples/ecommerce/rtml.scale.yaml puts every role that has a scale-out backend on it."""

import shutil
from pathlib import Path

from rtml.config import DEFAULT_BACKENDS, load_config
from rtml.project import EXAMPLE_DIR

# The scale-out backend of each role (DESIGN.md's table).
SCALE_OUT = {
    "event_log": "kafka",
    "schema_registry": "postgres",
    "dead_letter": "kafka",
    "offline_store": "postgres",
    "online_store": "redis",
    "trainer": "ray",
    "tracking": "mlflow",
    "serving": "ray_serve",
}


def test_every_role_uses_its_scale_out_backend(tmp_path: Path) -> None:
    shutil.copy(Path(EXAMPLE_DIR) / "rtml.scale.yaml", tmp_path / "rtml.yaml")
    config = load_config(tmp_path, environ={})
    assert set(SCALE_OUT) == set(DEFAULT_BACKENDS)
    for role, backend in SCALE_OUT.items():
        assert getattr(config, role).type == backend, role
    assert config.dead_letter.index is not None  # type: ignore[union-attr]  # and searchable
    assert config.tracking.tracking_uri is not None  # a tracking server, not the local file


def test_the_scale_file_names_the_same_project_as_the_embedded_one(tmp_path: Path) -> None:
    shutil.copy(Path(EXAMPLE_DIR) / "rtml.yaml", tmp_path / "rtml.yaml")
    embedded = load_config(tmp_path, environ={})
    shutil.copy(Path(EXAMPLE_DIR) / "rtml.scale.yaml", tmp_path / "rtml.yaml")
    assert load_config(tmp_path, environ={}).project == embedded.project
