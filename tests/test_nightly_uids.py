"""Output UIDs of the nightly job: derived from the inputs' hash and the software version, valid UIDs."""

import re

from dosimetry.export import deterministic_uids
from dosimetry.export.rtdose import new_uid
from dosimetry.nightly.job import scrub_uids
from dosimetry.nightly.uids import instance_file_name, output_uid, study_key, uid_seed

UID = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def test_the_same_seed_gives_the_same_uids_and_another_seed_others():
    with deterministic_uids(uid_seed("abc")):
        first = [new_uid() for _ in range(3)]
    with deterministic_uids(uid_seed("abc")):
        again = [new_uid() for _ in range(3)]
    with deterministic_uids(uid_seed("abc", version="9.9")):
        other_version = [new_uid() for _ in range(3)]
    assert first == again and len(set(first)) == 3
    assert not set(first) & set(other_version)
    assert all(UID.match(u) and len(u) <= 64 for u in first)
    assert new_uid() != new_uid()  # outside the block: random as before
    assert output_uid("s", "report-series") == output_uid("s", "report-series") != output_uid("s", "report-instance")


def test_names_are_hashes_never_dicom_values():
    assert study_key("1.2.3") == study_key("1.2.3") and len(study_key("1.2.3")) == 16
    assert "/" not in instance_file_name("../../etc/passwd") and instance_file_name("x").endswith(".dcm")
    text = scrub_uids("series 1.2.826.0.1.3680043.8.498.1 of version 0.1.0 failed")
    assert "1.2.826" not in text and "uid-" in text and "0.1.0" in text
