"""Backends, one package per role and one module per backend.

Each role has a small ``typing.Protocol`` port in ``<role>/base.py``. Backends are
picked by name from :data:`rtml.backends.registry.BACKENDS` and imported lazily, so
an optional dependency is needed only by the backend that uses it.
"""
