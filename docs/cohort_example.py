# %% [markdown]
# # Cohort analysis: which tumour dose predicts response?
#
# A notebook-style example (cells marked `# %%`; it runs as a plain script too, and the tests run it).
# It builds a synthetic cohort in the files `dosimetry batch` and a radiologist would give, with a dose
# threshold planted in it, and lets `dosimetry.cohort` find it again:
#
# * `cohort.csv`: as written by `dosimetry batch` (one row per case and ROI: `case_id, roi, role,
#   volume_ml, mean_gy, D70, ...`);
# * `responses.csv`: one row per lesion and time point with the longest diameter (RECIST 1.1) and whether
#   the lesion is a target lesion (a patient's third liver lesion is not: two per organ).
#
# Lesions respond (shrink by 35-70%) when their mean dose is at least `PLANTED_THRESHOLD_GY`, except for
# one lesion in ten whose outcome is flipped (biology is not a step function).

# %%
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

from dosimetry.cohort import analyse_cohort, write_cohort_analysis

PLANTED_THRESHOLD_GY = 120.0
rng = np.random.default_rng(2024)
work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="cohort-example-"))
work.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The synthetic cohort

# %%
cohort_rows, response_rows = [], []
for p in range(40):
    case_id = f"P{p + 1:03d}"
    cohort_rows.append(
        {"case_id": case_id, "roi": "liver", "role": "liver", "volume_ml": 1600.0, "mean_gy": 40.0, "D70": 25.0}
    )
    for k in range(int(rng.integers(1, 4))):
        roi = f"lesion{k + 1}"
        mean_gy = float(rng.lognormal(np.log(130.0), 0.55))
        cohort_rows.append(
            {
                "case_id": case_id,
                "roi": roi,
                "role": "tumor",
                "volume_ml": round(float(rng.uniform(3, 200)), 1),
                "mean_gy": round(mean_gy, 1),
                "D70": round(mean_gy * float(rng.uniform(0.55, 0.8)), 1),
            }
        )
        responds = (mean_gy >= PLANTED_THRESHOLD_GY) != (rng.random() < 0.1)
        baseline_mm = round(float(rng.uniform(20, 90)), 1)
        factor = rng.uniform(0.3, 0.65) if responds else rng.uniform(0.8, 1.35)
        target = "yes" if k < 2 else "no"  # RECIST 1.1 takes at most two target lesions per organ
        for timepoint, size in (("baseline", baseline_mm), ("follow-up", round(baseline_mm * float(factor), 1))):
            response_rows.append(
                {"case_id": case_id, "roi": roi, "timepoint": timepoint, "longest_diameter_mm": size, "target": target}
            )

for name, rows in (("cohort.csv", cohort_rows), ("responses.csv", response_rows)):
    with (work / name).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
print(f"{len(cohort_rows)} ROIs in cohort.csv, {len(response_rows)} rows in responses.csv, in {work}")

# %% [markdown]
# ## Classification (RECIST 1.1) and dose-response
# `analyse_cohort` is what `dosimetry cohort cohort.csv --responses responses.csv --criteria recist11` runs.

# %%
result = analyse_cohort(work / "cohort.csv", work / "responses.csv", criteria="recist11", n_bootstrap=500, seed=1)
for row in result.lesion_rows()[:4]:
    print(row["case_id"], row["roi"], row["category"], "|", row["rule"])
print("patients:", {c: sum(p.category == c for p in result.patients) for c in ("CR", "PR", "SD", "PD")})

# %%
m = result.metrics["mean_gy"]
print(f"AUC {m.auc:.3f} (95% CI {m.auc_ci95[0]:.3f}-{m.auc_ci95[1]:.3f})")
print(
    f"Youden threshold {m.threshold_gy:.1f} Gy (95% CI {m.threshold_ci95_gy[0]:.1f}-{m.threshold_ci95_gy[1]:.1f}), "
    f"sensitivity {m.sensitivity:.2f}, specificity {m.specificity:.2f}; planted: {PLANTED_THRESHOLD_GY:.0f} Gy"
)
print(
    f"no lesion responded below {m.no_response_below_gy:.1f} Gy; every lesion responded above {m.all_response_above_gy:.1f} Gy"
)
if m.logistic.d50_gy is not None:
    lo, hi = m.logistic.d50_ci95_gy
    print(f"logistic D50 {m.logistic.d50_gy:.1f} Gy (95% CI {lo:.1f}-{hi:.1f})")

# %% [markdown]
# ## The output folder: tables, JSON, figures and an HTML page

# %%
out = write_cohort_analysis(result, work / "analysis")
print(sorted(p.name for p in out.iterdir() if not p.name.startswith(".")))
