"""DICOM networking of the nightly job (pynetdicom): the SCU towards the PACS and our storage SCP.

:class:`PacsClient` opens one association per operation (C-ECHO, C-FIND, C-MOVE, C-GET, C-STORE), each
with explicit timeouts (connection, ACSE, DIMSE and network idle = ``[pacs] timeout_s``). A PACS that
does not answer, rejects or aborts the association, or times out raises
:class:`~dosimetry.errors.PacsUnreachableError` (exit 12): the job stops and the ledger keeps the work.

:class:`StorageServer` is the storage SCP that C-MOVE sends to. It binds to the configured address only,
accepts associations only from the allowed AE titles and only to its own AE title, accepts only the
storage SOP classes of the inputs (PET, NM, CT, RT Structure Set, Segmentation), and writes an instance
only when it belongs to the series being retrieved: to a temporary name, renamed when complete, under a
hash of its SOP Instance UID (no DICOM value ever becomes part of a path).

Nothing here logs a patient name or ID; pynetdicom's own logger is kept at WARNING by the command (its
DEBUG output dumps identifiers).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, build_role, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dosimetry.errors import PacsUnreachableError
from dosimetry.nightly.config import Node, PacsNode
from dosimetry.nightly.uids import instance_file_name

log = logging.getLogger("dosimetry.nightly")

INPUT_STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
    "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.20",  # NM Image Storage
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage
)
"""The only SOP classes our storage SCP accepts: the inputs of a dosimetry (see dicom/discovery.py)."""

INPUT_MODALITIES = ("PT", "NM", "CT", "RTSTRUCT", "SEG")
"""Series of these modalities are retrieved as inputs (RT Dose, SR, documents are not)."""

_STATUS_SUCCESS = 0x0000
_STATUS_PENDING = (0xFF00, 0xFF01)
_STATUS_REFUSED = 0xA700  # "Refused: out of resources" family; used for "not expected here"


@dataclass
class _Expected:
    study_uid: str
    series_uids: frozenset
    folder: Path
    received: set = field(default_factory=set)


class StoreTarget:
    """Where received instances go: the series being retrieved and its folder (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._expected: _Expected | None = None

    @contextmanager
    def expect(self, study_uid: str, series_uids, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._expected = _Expected(study_uid, frozenset(series_uids), folder)
        try:
            yield self
        finally:
            with self._lock:
                self._expected = None

    def handle_store(self, event) -> int:
        """EVT_C_STORE handler: write the instance if it belongs to what is being retrieved."""
        with self._lock:
            expected = self._expected
        try:
            ds = event.dataset
            study_uid, series_uid = str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
            sop_uid = str(ds.get("SOPInstanceUID", ""))
        except Exception:  # a dataset that cannot be decoded: refused, never written
            log.warning("storage SCP: refused an instance that cannot be decoded")
            return 0xC210
        if expected is None or study_uid != expected.study_uid or series_uid not in expected.series_uids or not sop_uid:
            log.warning("storage SCP: refused an instance that is not part of the retrieval in progress")
            return _STATUS_REFUSED
        path = expected.folder / instance_file_name(sop_uid)
        tmp = path.with_name(f".{path.name}.partial-{threading.get_ident()}")
        try:
            with tmp.open("wb") as handle:
                handle.write(event.encoded_dataset())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            log.warning("storage SCP: cannot write a received instance (%s)", err.strerror or err)
            return 0xA700
        with self._lock:
            if self._expected is expected:
                expected.received.add(sop_uid)
        return _STATUS_SUCCESS


def _configure_timeouts(ae: AE, timeout_s: float) -> None:
    ae.acse_timeout = timeout_s
    ae.dimse_timeout = timeout_s
    ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s


class StorageServer:
    """Our storage SCP, running in a background thread for the length of a ``with`` block."""

    def __init__(self, local: Node, allowed_ae_titles, target: StoreTarget, *, timeout_s: float = 30.0):
        if not allowed_ae_titles:
            raise ValueError("the storage SCP needs at least one allowed AE title")
        self.local, self.target = local, target
        ae = AE(ae_title=local.ae_title)
        ae.require_calling_aet = list(allowed_ae_titles)
        ae.require_called_aet = True
        ae.maximum_associations = 4
        _configure_timeouts(ae, timeout_s)
        for uid in INPUT_STORAGE_CLASSES:
            ae.add_supported_context(uid, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        self._ae = ae
        self._server = None

    def __enter__(self) -> StorageServer:
        try:
            self._server = self._ae.start_server(
                (self.local.host, self.local.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self.target.handle_store)],
            )
        except OSError as err:
            from dosimetry.errors import OptionsError

            raise OptionsError(
                f"[local] {self.local.host}:{self.local.port}: cannot listen there "
                f"({err.strerror or err}); another program uses the port, or the address is "
                "not this machine's"
            ) from err
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


class PacsClient:
    """The SCU side: one association per operation, with explicit timeouts."""

    def __init__(self, local: Node, pacs: PacsNode):
        self.local, self.pacs = local, pacs

    @property
    def where(self) -> str:
        return f"PACS {self.pacs.ae_title} at {self.pacs.host}:{self.pacs.port}"

    def _ae(self) -> AE:
        ae = AE(ae_title=self.local.ae_title)
        _configure_timeouts(ae, self.pacs.timeout_s)
        return ae

    @contextmanager
    def _association(self, ae: AE, what: str, **kwargs):
        assoc = ae.associate(self.pacs.host, self.pacs.port, ae_title=self.pacs.ae_title, **kwargs)
        if not assoc.is_established:
            if assoc.is_rejected:
                raise PacsUnreachableError(
                    f"{self.where} rejected the association ({what}); check that its "
                    f"DicomModalities list our AE title {self.local.ae_title} at "
                    f"{self.local.host}:{self.local.port}"
                )
            raise PacsUnreachableError(
                f"{self.where} does not answer ({what}: connection refused, closed or no "
                f"answer within {self.pacs.timeout_s:g} s); check that it runs and the "
                "[pacs] host and port"
            )
        try:
            yield assoc
        finally:
            if assoc.is_established:
                assoc.release()

    def _lost(self, what: str) -> PacsUnreachableError:
        return PacsUnreachableError(
            f"{self.where} stopped answering during {what} (aborted, closed or timed out "
            f"after {self.pacs.timeout_s:g} s)"
        )

    def echo(self) -> None:
        ae = self._ae()
        ae.add_requested_context(Verification)
        with self._association(ae, "C-ECHO") as assoc:
            status = assoc.send_c_echo()
            if not status or status.Status != _STATUS_SUCCESS:
                raise self._lost("C-ECHO")

    def find(self, identifier: Dataset) -> list[Dataset]:
        """C-FIND (Study Root); the matches, or PacsUnreachableError on failure."""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        level = identifier.QueryRetrieveLevel
        matches = []
        with self._association(ae, f"C-FIND {level}") as assoc:
            for status, match in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise self._lost(f"C-FIND {level}")
                if status.Status in _STATUS_PENDING:
                    matches.append(match)
                elif status.Status != _STATUS_SUCCESS:
                    raise PacsUnreachableError(
                        f"{self.where} answered C-FIND {level} with status "
                        f"0x{status.Status:04X}; check its query settings"
                    )
        return matches

    def _retrieve_identifier(self, study_uid: str, series_uid: str, sop_instance_uid: str | None) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE" if sop_instance_uid else "SERIES"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        if sop_instance_uid:
            ds.SOPInstanceUID = sop_instance_uid
        return ds

    def _check_retrieve(self, responses, what: str) -> int:
        failed = completed = 0
        final = None
        for status, _identifier in responses:
            if not status:
                raise self._lost(what)
            final = status
        if final is None:
            raise self._lost(what)
        completed = int(final.get("NumberOfCompletedSuboperations", 0) or 0)
        failed = int(final.get("NumberOfFailedSuboperations", 0) or 0)
        if final.Status not in (_STATUS_SUCCESS, 0xB000) or failed:
            raise PacsUnreachableError(
                f"{self.where}: {what} ended with status 0x{final.Status:04X} "
                f"({completed} sent, {failed} failed); check that the PACS knows our AE "
                f"title {self.local.ae_title} at {self.local.host}:{self.local.port}"
            )
        return completed

    def move(self, study_uid: str, series_uid: str, sop_instance_uid: str | None = None) -> int:
        """C-MOVE one series (or one instance of it) to our own AE title (the storage SCP must be running);
        the number of instances sent."""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        with self._association(ae, "C-MOVE") as assoc:
            responses = assoc.send_c_move(
                self._retrieve_identifier(study_uid, series_uid, sop_instance_uid),
                self.local.ae_title,
                StudyRootQueryRetrieveInformationModelMove,
            )
            return self._check_retrieve(responses, "C-MOVE")

    def get(self, study_uid: str, series_uid: str, target: StoreTarget, sop_instance_uid: str | None = None) -> int:
        """C-GET one series (or one instance of it) over the same association (we take the storage SCP role
        on it); the number of instances sent."""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        roles = []
        for uid in INPUT_STORAGE_CLASSES:
            ae.add_requested_context(uid, ALL_TRANSFER_SYNTAXES)
            roles.append(build_role(uid, scp_role=True))
        with self._association(
            ae, "C-GET", ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, target.handle_store)]
        ) as assoc:
            responses = assoc.send_c_get(
                self._retrieve_identifier(study_uid, series_uid, sop_instance_uid),
                StudyRootQueryRetrieveInformationModelGet,
            )
            return self._check_retrieve(responses, "C-GET")

    def store(self, paths, on_stored) -> None:
        """C-STORE files over one association; ``on_stored(path, dataset, status)`` right after each response.

        Raises
        ------
        PacsUnreachableError
            The association cannot be opened, or a response is lost (abort, close, timeout).
        """
        datasets = [(Path(p), dcmread(p)) for p in paths]
        ae = self._ae()
        contexts = {}
        for _, ds in datasets:
            syntaxes = tuple(
                dict.fromkeys([str(ds.file_meta.TransferSyntaxUID), ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            )
            contexts[(str(ds.SOPClassUID), syntaxes)] = None
        for sop_class, syntaxes in contexts:
            ae.add_requested_context(sop_class, list(syntaxes))
        with self._association(ae, "C-STORE") as assoc:
            for path, ds in datasets:
                status = assoc.send_c_store(ds)
                if not status:
                    raise self._lost("C-STORE")
                on_stored(path, ds, int(status.Status))
