"""One local Ray cluster per test module (2 CPUs, no dashboard, no auth token under ~/.ray)."""

import os

import pytest


def ray_cluster_fixture():
    """A module-scoped fixture: `ray` with a running local cluster; the module is skipped
    with a clear reason when Ray is not installed."""

    @pytest.fixture(scope="module")
    def ray_cluster():
        ray = pytest.importorskip("ray", reason="Ray not installed: pip install -e '.[ray]'")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        yield ray
        ray.shutdown()

    return ray_cluster
