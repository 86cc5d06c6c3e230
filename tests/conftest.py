"""Settings shared by every test."""

import fcntl
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from tests.services import MlflowServer, RayCluster, start_ray_cluster

_SHARED = pytest.StashKey[Path]()
_SHARED_RAY = "ray.json"
_SHARED_MLFLOW = "mlflow.json"


def pytest_configure(config: pytest.Config) -> None:
    """The test run's folder for services its processes share (made by the controller)."""
    if not hasattr(config, "workerinput"):
        config.stash[_SHARED] = Path(tempfile.mkdtemp(prefix="ibs-shared-", dir="/tmp"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: each worker is told where the shared services are."""
    node.workerinput["ibsweep_shared"] = str(node.config.stash[_SHARED])


def pytest_unconfigure(config: pytest.Config) -> None:
    """The controller ends the shared services once every worker is done with them."""
    if hasattr(config, "workerinput"):
        return
    folder = config.stash[_SHARED]
    if (folder / _SHARED_RAY).exists():
        RayCluster.load(folder / _SHARED_RAY).stop()
    if (folder / _SHARED_MLFLOW).exists():
        MlflowServer.load(folder / _SHARED_MLFLOW).stop()
    shutil.rmtree(folder, ignore_errors=True)


def pytest_itemcollected(item: pytest.Item) -> None:
    """How pytest-xdist's workers share the tests (``--dist loadgroup``): each module's tests
    run together in one worker (a module fixture starts once), except end-to-end tests that
    use no module fixture, which are handed out one by one. (Marked as each test is collected:
    pytest-xdist reads the groups in its own ``pytest_collection_modifyitems``.)"""
    if _uses_module_fixture(item) or not _slow(item):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The end-to-end tests first (whole modules, then the sweeps, then the rest), so that no
    pytest-xdist worker ends on a long tail."""
    items.sort(
        key=lambda item: (
            not _slow(item),
            not _uses_module_fixture(item),
            "shared_ray" not in item.fixturenames,
        )
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """A pytest-xdist worker stops at once if its groups were not applied (pytest-xdist 3.8
    names a group in the test's id, which pytest 9.2 no longer lets it change): the module
    fixtures would then start once per worker, unseen."""
    if not hasattr(session.config, "workerinput") or not session.config.getvalue("loadgroup"):
        return
    lost = [
        i.nodeid
        for i in session.items
        if i.get_closest_marker("xdist_group") and "@" not in i.nodeid
    ]
    if lost:
        message = (
            f"pytest-xdist did not apply --dist loadgroup's groups (e.g. to {lost[0]}); "
            f"pytest {pytest.__version__} is not one the tests support (pyproject.toml)"
        )
        print(f"ERROR: {message}", file=sys.__stderr__)  # a worker's own errors are not shown
        raise pytest.UsageError(message)


def _slow(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None


def _uses_module_fixture(item: pytest.Item) -> bool:
    # pytest's resolved fixtures of the item (no public accessor gives their scopes)
    return any(
        d.scope in ("module", "class", "package")
        for defs in item._fixtureinfo.name2fixturedefs.values()
        for d in defs
    )


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny tensors: OpenMP threads only wait on each other (badly so on a loaded machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def _migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One empty MLflow SQLite store per test process, made (and migrated) once."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("migrated-store")
    SqlAlchemyStore(f"sqlite:///{folder / 'm.db'}", str(folder / "mlruns")).engine.dispose()
    return folder / "m.db"


@pytest.fixture
def new_store(tmp_path: Path, _migrated_store: Path) -> str:
    """The URI of a new, empty MLflow SQLite store, ``tmp_path / "m.db"``: a copy of one made
    once, since MLflow runs every schema migration on a new file (2-3 s of CPU each time).
    The sweeps' tests still let ``ibsweep run`` create its own."""
    shutil.copyfile(_migrated_store, tmp_path / "m.db")
    return f"sqlite:///{tmp_path / 'm.db'}"


def _shared_folder(config: pytest.Config) -> Path:
    workerinput = getattr(config, "workerinput", {})
    return Path(workerinput.get("ibsweep_shared") or config.stash[_SHARED])


@contextmanager
def _first_to_ask(config: pytest.Config):
    """Held by one test process at a time: the first to hold it starts a shared service."""
    with open(_shared_folder(config) / "services.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _shared_folder(config)


@pytest.fixture(scope="session")
def shared_ray(pytestconfig: pytest.Config) -> RayCluster:
    """One Ray head (on 127.0.0.1, its own token, no dashboard) for the sweeps of every test
    that does not need a Ray of its own, in every pytest-xdist worker: started by the first
    worker that asks, ended by the controller. Each ``ibsweep run`` then connects in a second
    instead of starting Ray. The environment to run ibsweep with is ``shared_ray.driver_env``.

    It has 2 CPUs per worker: a test that holds its trials (at most 2 CPUs' worth) never
    waits on another test's.
    """
    with _first_to_ask(pytestconfig) as folder:
        if (folder / _SHARED_RAY).exists():
            return RayCluster.load(folder / _SHARED_RAY)
        cpus = 2 * int(getattr(pytestconfig, "workerinput", {}).get("workercount", 1))
        ray = start_ray_cluster(workers=(), head_cpus=cpus, dashboard=False)
        ray.save(folder / _SHARED_RAY)
        return ray


@pytest.fixture(scope="session")
def shared_mlflow(pytestconfig: pytest.Config) -> MlflowServer:
    """One ``mlflow server`` for every test that logs to a server but never stops it, started
    and ended like ``shared_ray``. It has two worker processes: more than one, so that their
    writes to its one SQLite store contend as those of MLflow's default four do. Each test's
    sweep has a name of its own, so its experiment is its own."""
    with _first_to_ask(pytestconfig) as folder:
        if (folder / _SHARED_MLFLOW).exists():
            return MlflowServer.load(folder / _SHARED_MLFLOW)
        server = MlflowServer(folder / "mlflow", workers=2)
        server.folder.mkdir()
        server.start()
        server.save(folder / _SHARED_MLFLOW)
        return server
