"""Fixtures of the validation tests (helpers live in validation_helpers.py)."""

from __future__ import annotations

import pytest
from validation_helpers import make_validator

from rtml.core.validation import Validator


@pytest.fixture(scope="session")
def validator() -> Validator:
    return make_validator(known_schema_ids={1})
