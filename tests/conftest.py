import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session", autouse=True)
def kernel_cache_dir(tmp_path_factory):
    """One kernel disk cache for the test session, so no test writes to the user's home directory."""
    from dosimetry.dose import kernels

    path = tmp_path_factory.mktemp("kernel_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv(kernels.CACHE_ENV_VAR, str(path))
    yield path
    mp.undo()
