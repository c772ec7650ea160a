"""rtml's schema registry: Confluent Schema Registry's REST API on a schema store.

- :mod:`.registry`: the rules (ids, versions, deletes, compatibility);
- :mod:`.app`: the ASGI app (``create_app(store)``);
- :mod:`.server`: ``serve(...)`` and the threaded :class:`RegistryServer`;
- :mod:`.client`: ``register_project_schemas(project, client_or_url)``.
"""

from rtml.services.registry.client import register_project_schemas, value_subject

__all__ = ["register_project_schemas", "value_subject"]
