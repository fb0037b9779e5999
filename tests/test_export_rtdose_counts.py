"""RT Dose counts computed slab by slab equal the whole-array computation (issue 10)."""

import numpy as np
import pytest

import dosimetry.export.rtdose as rtdose


def _plain(dose_gy):
    values = np.maximum(np.asarray(dose_gy, dtype=np.float64), 0.0)
    top = float(values.max(initial=0.0))
    scaling = rtdose._ds_value(top / (rtdose._FILL_FRACTION * rtdose.UINT32_MAX)) if top > 0 else "1"
    counts = np.clip(np.rint(values / float(scaling)), 0, rtdose.UINT32_MAX).astype(np.uint32)
    return counts, scaling, int(np.count_nonzero(np.asarray(dose_gy) < 0))


@pytest.mark.parametrize("order", ["C", "F"])
def test_slab_counts_equal_whole_array_counts(order, monkeypatch):
    monkeypatch.setattr(rtdose, "_SLAB_VOXELS", 64)  # many slabs
    rng = np.random.default_rng(12)
    dose = np.asarray(rng.gamma(2.0, 30.0, (13, 11, 9)).astype(np.float32), order=order)
    dose[0, 0, 0], dose[12, 10, 8] = -0.5, -1e-3  # negatives in the first and last slab
    counts, scaling, negative = rtdose._dose_counts(dose)
    expected = _plain(dose)
    assert np.array_equal(counts, expected[0]) and counts.dtype == np.uint32
    assert (scaling, negative) == expected[1:] and negative == 2
    assert counts.flags.f_contiguous == (order == "F")  # the dose's memory order is kept
    assert counts.max() > 0.9 * rtdose.UINT32_MAX * rtdose._FILL_FRACTION  # the scaling fills the range
