"""The simulator's tests share one small handler per module (`make_api()`); a module that needs
another chain defines its own `api` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stxbf.simulator import SimApi
from tests.simulator.helpers import changed_shared_chains, make_api


@pytest.fixture(scope="module")
def api() -> SimApi:
    return make_api()


@pytest.fixture(autouse=True)
def shared_chains_stay_as_built() -> Iterator[None]:
    """A test that changed a chain other tests share would make them depend on its order."""
    yield
    assert changed_shared_chains() == [], "a test changed a chain that other tests share"
