"""Settings shared by every test."""

import pytest
import torch

from tests.services import ray_cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, so that pytest-xdist's workers (a module each, `--dist loadscope`: a
    module fixture starts once) do not end on one long tail."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors: OpenMP threads only wait on each other (badly so on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_ray():
    """One Ray head (2 CPUs, on 127.0.0.1, its own token) for the sweeps of every test that
    does not need a Ray of its own: each ``ibsweep run`` then connects in a second instead of
    starting Ray. The environment to run ibsweep with is ``shared_ray.driver_env``."""
    with ray_cluster(workers=(), head_cpus=2) as ray:
        yield ray
