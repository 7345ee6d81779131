"""The in-process store the store tests share."""

import pytest

from synthweb.store import Store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    # chDB allows one on-disk path per process: every in-process store test shares this one.
    store = Store(f"chdb:///{tmp_path_factory.mktemp('store')}")
    store.migrate()
    return store
