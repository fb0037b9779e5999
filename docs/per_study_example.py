"""Per-study results in a notebook: tumour burden, lesions, partial-volume correction (issue 14).

Runs on the package's synthetic phantom (``data/samples/phantom``, whose true doses are in ``truth.json``);
each ``# %%`` block is a notebook cell. ``tests/test_per_study.py`` runs this file, so it stays true. Run it
from anywhere: ``python docs/per_study_example.py``.

The phantom image is perfectly sharp, so its small tumours have no partial-volume loss. To show what the
recovery-curve correction does, the example first blurs it as a scanner of 8 mm FWHM would, then
"measures" the recovery curve of that scanner on a simulated NEMA/IEC phantom (six spheres, 5:1
sphere-to-background), as a site would on its own scanner, and corrects the lesions' mean doses with it.
For your patients, measure the curve of your scanner and reconstruction on a real phantom and give that
file (``ClinicalOptions(recovery_curve="my_site_rc.csv")``, ``--recovery-curve my_site_rc.csv``). The shipped
``darienzo2017-endpoints`` curve is a published example of the file, not a calibration for your scanner.
"""

# %% the phantom, blurred as a scanner of 8 mm FWHM would show it
import json
import math
import tempfile
from itertools import product
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from dosimetry import ClinicalOptions, DosimetryOptions, read_image, read_slicer_segmentation, run_dosimetry

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
FWHM_MM = 8.0
SIGMA_PER_FWHM = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))  # Gaussian: FWHM = 2 sqrt(2 ln 2) sigma

sharp = read_image(SAMPLE / "activity_bqml.nii.gz")
blurred = sharp.with_array(
    gaussian_filter(sharp.array.astype(np.float64), FWHM_MM * SIGMA_PER_FWHM / sharp.spacing_mm, mode="constant")
)


# %% the site's recovery curve: NEMA/IEC sphere volumes, measured on the same (simulated) scanner
def simulated_sphere_rc(volume_ml: float, *, ratio: float = 5.0, spacing_mm: float = 4.0, n: int = 4) -> float:
    """Mean measured / true concentration in a sphere of ``volume_ml`` in a warm background (1 : ratio)."""
    radius = (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
    size = 2 * math.ceil((radius + 4.0 * FWHM_MM) / spacing_mm) + 1
    centres = (np.arange(size) - size // 2) * spacing_mm
    inside = np.zeros((size,) * 3)
    for offset in product(((np.arange(n) + 0.5) / n - 0.5) * spacing_mm, repeat=3):
        x, y, z = np.meshgrid(*(centres + o for o in offset), indexing="ij")
        inside += x**2 + y**2 + z**2 <= radius**2
    inside /= n**3  # fraction of each voxel inside the sphere
    measured = gaussian_filter(inside * ratio + (1.0 - inside), FWHM_MM * SIGMA_PER_FWHM / spacing_mm, mode="nearest")
    return float((measured * inside).sum() / inside.sum() / ratio)


NEMA_SPHERES_ML = (0.52, 1.15, 2.57, 5.57, 11.49, 26.52)  # 10, 13, 17, 22, 28, 37 mm spheres
curve_file = Path(tempfile.mkdtemp()) / "site_recovery_curve.csv"
curve_file.write_text(
    "volume_ml,recovery_coefficient\n" + "".join(f"{v},{simulated_sphere_rc(v):.4f}\n" for v in NEMA_SPHERES_ML)
)
print(curve_file.read_text())

# %% one study through the Python API, with the resolution and the recovery curve
rois, notes = read_slicer_segmentation(SAMPLE / "rois.seg.nrrd")
result = run_dosimetry(
    blurred,
    rois,
    ct=read_image(SAMPLE / "ct_hu.nii.gz"),
    options=DosimetryOptions(
        activity_units="Bq/mL",
        scan_delay_h=20,
        administered_activity_gbq=2.0,
        residual_fraction=0.03,
        lung_shunt_fraction=0.05,
        clinical=ClinicalOptions(resolution_mm=FWHM_MM, recovery_curve=curve_file),
    ),
)

# %% hepatic tumour burden (stats.json "tumor_burden")
burden = result.stats["tumor_burden"]
print(
    f"tumour burden {burden['burden_percent']:.1f}% "
    f"({burden['tumor_volume_ml']:.1f} mL of tumour in {burden['liver_volume_ml']:.1f} mL of liver); "
    f"over: {burden['exceeds'] or 'no limit'}"
)

# %% one row per lesion: the corrected mean dose beside the measured one, against the phantom's truth
lesions = result.lesions()
truth = json.loads((SAMPLE / "truth.json").read_text())["compartments"]
lesions["true_mean_gy"] = [truth["T" + name.split()[-1]]["mean_dose_ldm_gy"] for name in lesions["roi"]]
lesions["error_percent"] = 100.0 * (lesions["mean_gy"] / lesions["true_mean_gy"] - 1.0)
lesions["error_pvc_percent"] = 100.0 * (lesions["mean_gy_pvc"] / lesions["true_mean_gy"] - 1.0)
columns = ["roi", "volume_ml", "diameter_per_fwhm", "recovery_coefficient", "true_mean_gy", "mean_gy", "mean_gy_pvc"]
print(lesions[columns + ["error_percent", "error_pvc_percent"]].round(2).to_string(index=False))
print("units:", {c: lesions.attrs["units"][c] for c in columns[1:] if c in lesions.attrs["units"]})

# %% every ROI as a DataFrame (the columns of stats.csv)
frame = result.to_dataframe()
print(frame[["roi", "role", "volume_ml", "mean_gy", "mean_gy_pvc", "D70", "V100"]].round(1).to_string(index=False))

# %% what the run assumed and warned about, in the API's words
for entry in result.stats["assumptions"]:
    print("ASSUMED:", entry["what"], entry["value_used"], "->", entry["fix"])
for warning in result.warnings:
    print("warning:", warning)
