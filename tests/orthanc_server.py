"""A real Orthanc (Debian package ``orthanc``, installed by scripts/test.sh) for the nightly job's tests.

:class:`OrthancServer` writes a configuration into a temporary folder (storage and index there, free
loopback ports, our AE title in DicomModalities, no plugins, remote access off), starts ``Orthanc`` and
waits for its REST API; :meth:`stop` terminates it (then kills). Orthanc 1.10 cannot be told which address
to listen on, so it is started with ``loopback_bind.c`` preloaded (compiled here with ``cc``), which turns
its wildcard binds into loopback binds; :meth:`listening_addresses` reads /proc/net/tcp to prove it.

Studies go in and come out through the REST API only (``POST /instances``, ``/tools/lookup``, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

SHIM_SOURCE = Path(__file__).parent / "nightly_support" / "loopback_bind.c"
ORTHANC_AE = "ORTHANC"


def orthanc_program() -> str | None:
    """The Orthanc server program (the Debian package puts it in /usr/sbin, not on every user's PATH)."""
    found = shutil.which("Orthanc")
    return found or ("/usr/sbin/Orthanc" if os.access("/usr/sbin/Orthanc", os.X_OK) else None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def build_shim(folder: Path) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(
            "the Orthanc tests need a C compiler (cc) for tests/nightly_support/loopback_bind.c; "
            "install gcc (scripts/test.sh does)"
        )
    target = folder / "loopback_bind.so"
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-o", str(target), str(SHIM_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    return target


class OrthancServer:
    def __init__(self, root: Path, *, our_ae: str, our_port: int, shim: Path):
        self.root = root
        self.http_port, self.dicom_port = free_port(), free_port()
        self.our_ae, self.our_port, self.shim = our_ae, our_port, shim
        self.process: subprocess.Popen | None = None
        (root / "storage").mkdir(parents=True, exist_ok=True)
        self.config_path = root / "orthanc.json"
        self.config_path.write_text(
            json.dumps(
                {
                    "Name": "nightly-test",
                    "StorageDirectory": str(root / "storage"),
                    "IndexDirectory": str(root / "storage"),
                    "HttpPort": self.http_port,
                    "DicomPort": self.dicom_port,
                    "DicomAet": ORTHANC_AE,
                    "RemoteAccessAllowed": False,
                    "AuthenticationEnabled": False,
                    "DicomCheckCalledAet": True,
                    "DicomCheckModalityHost": True,
                    "DicomAlwaysAllowEcho": False,
                    "DicomAlwaysAllowStore": False,
                    "DicomModalities": {"y90": [our_ae, "127.0.0.1", our_port]},
                    "DicomScuTimeout": 10,
                    "DicomScpTimeout": 30,
                    "Plugins": [],
                    "SaveJobs": False,
                    "StorageCompression": False,
                    "OverwriteInstances": False,
                    "HttpProxy": "",
                },
                indent=2,
            )
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # --- process ---------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 30) -> OrthancServer:
        log = open(self.root / "orthanc.log", "ab")
        env = {**os.environ, "LD_PRELOAD": str(self.shim)}
        self.process = subprocess.Popen(
            [orthanc_program(), str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited with {self.process.returncode}; see {self.root / 'orthanc.log'}")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"Orthanc did not answer within {timeout_s} s; see {self.root / 'orthanc.log'}")

    def stop(self, *, graceful: bool = True) -> None:
        """Terminate Orthanc (then kill it); ``graceful=False`` kills at once (teardown: its storage is discarded)."""
        if self.process is None:
            return
        if self.process.poll() is None and not graceful:
            self.process.kill()
            self.process.wait(timeout=15)
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGCONT)  # a frozen server cannot terminate
            except ProcessLookupError:
                pass
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def listening_addresses(self) -> set[str]:
        """The local addresses Orthanc's ports listen on (from /proc/net/tcp and tcp6)."""
        ports = {self.http_port, self.dicom_port}
        found = set()
        for name in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(name).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, port = local.rsplit(":", 1)
                if state == "0A" and int(port, 16) in ports:  # LISTEN
                    found.add(_hex_address(address))
        return found

    # --- REST ------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, data: bytes | None = None, timeout: float = 30):
        request = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return body

    def get(self, path: str):
        return json.loads(self._request("GET", path))

    def get_bytes(self, path: str) -> bytes:
        return self._request("GET", path)

    def post(self, path: str, data: bytes):
        return json.loads(self._request("POST", path, data))

    def upload_folder(self, folder: Path) -> int:
        count = 0
        for path in sorted(folder.rglob("*.dcm")):
            answer = self.post("/instances", path.read_bytes())
            assert answer["Status"] in ("Success", "AlreadyStored"), answer
            count += 1
        return count

    def study_id(self, study_uid: str) -> str | None:
        hits = [h for h in self.post("/tools/lookup", study_uid.encode()) if h["Type"] == "Study"]
        return hits[0]["ID"] if hits else None

    def instances(self, study_uid: str) -> list[dict]:
        """Every instance of the study, with its tags: [{"id", "Modality", "SOPClassUID", ...}]."""
        study = self.study_id(study_uid)
        if study is None:
            return []
        result = []
        for instance in self.get(f"/studies/{study}/instances"):
            tags = self.get(f"/instances/{instance['ID']}/simplified-tags")
            tags["id"] = instance["ID"]
            result.append(tags)
        return result

    def instance_file(self, instance_id: str) -> bytes:
        return self.get_bytes(f"/instances/{instance_id}/file")


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return socket.inet_ntop(socket.AF_INET6, b"".join(words))
