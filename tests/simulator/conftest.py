"""The simulator's tests share one small handler per module (`make_api()`); a module that needs
another chain defines its own `api` fixture."""

from __future__ import annotations

import pytest

from stxbf.simulator import SimApi
from tests.simulator.helpers import make_api


@pytest.fixture(scope="module")
def api() -> SimApi:
    return make_api()
