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


@pytest.fixture(scope="module")
def phantom_sample():
    """The sample phantom (data/samples/phantom) as the API takes it: activity, CT, Slicer ROIs, run options."""
    from dosimetry.io.images import read_image
    from dosimetry.io.roi_files import read_slicer_segmentation
    from dosimetry.pipeline import DosimetryOptions

    sample = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
    rois, _ = read_slicer_segmentation(sample / "rois.seg.nrrd")
    options = DosimetryOptions(
        scan_delay_h=20,
        activity_units="Bq/mL",
        administered_activity_gbq=2.0,
        residual_fraction=0.03,
        lung_shunt_fraction=0.05,
    )
    return read_image(sample / "activity_bqml.nii.gz"), read_image(sample / "ct_hu.nii.gz"), rois, options
