"""Names derived by hashing: the study key of logs and file names, and the seed of the output UIDs.

* :func:`study_key`: the first 16 hex digits of SHA-256 of the StudyInstanceUID. Logs, folder names and
  messages name a study by it, never by a DICOM value (no patient data, nothing unsanitised in a path).
* :func:`uid_seed`: input hash + software version. Every UID the exports of a study make
  (:func:`dosimetry.export.deterministic_uids`) and the report's Encapsulated PDF UIDs (:func:`output_uid`)
  derive from it, so the same inputs computed again by the same version give the same instances, which
  a PACS recognises as duplicates; new inputs or a new version give new instances.
"""

from __future__ import annotations

import hashlib

from dosimetry._version import __version__
from dosimetry.export.rtdose import uid_from_seed


def study_key(study_uid: str) -> str:
    return hashlib.sha256(study_uid.encode("ascii", "replace")).hexdigest()[:16]


def instance_file_name(sop_instance_uid: str) -> str:
    """The file name of a received instance: a hash of its SOP Instance UID, never the UID itself."""
    return hashlib.sha256(sop_instance_uid.encode("ascii", "replace")).hexdigest()[:32] + ".dcm"


def uid_seed(input_hash: str, version: str = __version__) -> str:
    return f"y90-dosimetry nightly {version} {input_hash}"


def output_uid(seed: str, what: str) -> str:
    """A UID for ``what`` (e.g. ``"report-series"``) of the outputs made from ``seed``."""
    return uid_from_seed(f"{seed}:{what}")
