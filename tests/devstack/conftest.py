"""The devstack tests use the session's shared stack (tests/conftest.py)."""

from __future__ import annotations

import pytest

from devstack.stack import Stack


@pytest.fixture(scope="session")
def ds_stack(stack: Stack) -> Stack:
    return stack
