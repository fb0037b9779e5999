"""The nightly job's TOML configuration: read, checked completely, one message per fault (exit 7).

Every fault found is listed (``[pacs] port: got 70000, expected an integer 1-65535``), all of them in the
one error line, so a PACS administrator fixes the file in one go. Paths are relative to the config file.
The ``[run]`` table and the per-study CSV hold options of ``dosimetry run`` (``_`` for ``-``); they are
checked by the ``run`` command's own parser, so their ranges are those of ``dosimetry run``.
"""

from __future__ import annotations

import csv
import ipaddress
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dosimetry.errors import OptionsError


class ConfigError(OptionsError):
    """The configuration file is missing, unreadable or wrong; the message lists every fault (exit 7)."""


SENDABLE = ("rtdose", "sr", "seg", "report")
"""What can be stored back: RT Dose, TID 1500 SR, Segmentation of the ROIs used, report as Encapsulated PDF."""

RETRIEVE_METHODS = ("C-MOVE", "C-GET")

_RUN_OPTIONS_REFUSED = {
    "out",
    "overwrite",
    "pdf",
    "quiet",
    "q",
    "study",
    "activity",
    "roi",
    "segmentation",
    "ct",
    "scan_delay_h",
    "scan_time",
    "activity_units",
    "verbose",
    "v",
}
"""``dosimetry run`` options the job sets itself or that do not apply to a DICOM study from the PACS."""

STUDY_KEY_COLUMNS = ("AccessionNumber", "StudyInstanceUID")


@dataclass(frozen=True)
class Node:
    """A DICOM node: AE title, address and port."""

    ae_title: str
    host: str
    port: int


@dataclass(frozen=True)
class PacsNode(Node):
    retrieve: str = "C-MOVE"
    timeout_s: float = 30.0


@dataclass(frozen=True)
class NightlyConfig:
    """The checked configuration (see README "Nightly job" for every key)."""

    path: Path
    local: Node
    pacs: PacsNode | None
    source_kind: str  # "pacs" or "folder"
    source_path: Path | None
    modalities: tuple[str, ...]
    lookback_days: int
    run_options: dict  # [run] defaults, key with "_" -> value
    studies: dict  # ("AccessionNumber"|"StudyInstanceUID", value) -> {option: value}
    send: tuple[str, ...]
    destination: str | None
    work: Path
    results: Path
    ledger: Path
    allowed_ae_titles: tuple[str, ...]
    max_attempts: int = 3
    settle_s: float = 5.0
    faults: list = field(default_factory=list, repr=False, compare=False)


class _Checker:
    """Reads values out of the TOML tables, collecting one message per fault."""

    def __init__(self, data: dict):
        self.data = data
        self.faults: list[str] = []

    def fault(self, where: str, message: str) -> None:
        self.faults.append(f"{where}: {message}")

    def table(self, name: str, *, required: bool) -> dict | None:
        value = self.data.get(name)
        if value is None:
            if required:
                self.fault(f"[{name}]", "missing; add the table")
            return None
        if not isinstance(value, dict):
            self.fault(f"[{name}]", f"got {type(value).__name__}, expected a table")
            return None
        return value

    def unknown(self, name: str, table: dict, known) -> None:
        for key in table:
            if key not in known:
                self.fault(f"[{name}] {key}", f"unknown key; the keys are {', '.join(sorted(known))}")

    def ae_title(self, where: str, value) -> str | None:
        if (
            not isinstance(value, str)
            or not value.strip()
            or len(value.strip()) > 16
            or not value.isascii()
            or any(c in value for c in "\\\r\n\t")
            or not value.strip().isprintable()
        ):
            self.fault(where, f"got {value!r}, expected an AE title of 1-16 printable ASCII characters")
            return None
        return value.strip()

    def host(self, where: str, value) -> str | None:
        try:
            return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
        except ValueError:
            self.fault(where, f'got {value!r}, expected an IP address such as "127.0.0.1"')
            return None

    def integer(self, where: str, value, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fault(where, f"got {value!r}, expected an integer {low}-{high}")
            return None
        return value

    def number(self, where: str, value, low: float, high: float) -> float | None:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not low < value <= high
        ):
            self.fault(where, f"got {value!r}, expected a number > {low:g} and <= {high:g}")
            return None
        return float(value)

    def strings(self, where: str, value, choices=None) -> tuple[str, ...] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fault(where, f"got {value!r}, expected a list of strings")
            return None
        if choices is not None:
            bad = [v for v in value if v not in choices]
            if bad:
                self.fault(where, f"got {', '.join(map(repr, bad))}, expected some of {', '.join(choices)}")
                return None
        return tuple(v.strip() for v in value)


def _node(check: _Checker, name: str, table: dict, *, pacs: bool) -> Node | None:
    known = {"ae_title", "host", "port"} | ({"retrieve", "timeout_s"} if pacs else set())
    check.unknown(name, table, known)
    ae = check.ae_title(f"[{name}] ae_title", table.get("ae_title"))
    host = check.host(f"[{name}] host", table.get("host", "127.0.0.1"))
    port = check.integer(f"[{name}] port", table.get("port"), 1, 65535)
    if not pacs:
        return Node(ae, host, port) if None not in (ae, host, port) else None
    retrieve = table.get("retrieve", "C-MOVE")
    if retrieve not in RETRIEVE_METHODS:
        check.fault(f"[{name}] retrieve", f'got {retrieve!r}, expected "C-MOVE" or "C-GET"')
        retrieve = None
    timeout = check.number(f"[{name}] timeout_s", table.get("timeout_s", 30), 0, 3600)
    if None in (ae, host, port, retrieve, timeout):
        return None
    return PacsNode(ae, host, port, retrieve, timeout)


def run_argv(options: dict) -> list[str]:
    """``dosimetry run`` arguments of a ``[run]`` table or CSV row: ``key_name = value`` -> ``--key-name value``;
    ``true`` -> the flag alone, ``false`` -> nothing, a list -> the option repeated."""
    argv: list[str] = []
    for key, value in options.items():
        option = "--" + key.replace("_", "-")
        if value is True:
            argv.append(option)
        elif value is False or value is None or value == "":
            continue
        elif isinstance(value, list):
            for item in value:
                argv += [option, str(item)]
        else:
            argv += [option, str(value)]
    return argv


def check_run_options(options: dict) -> str | None:
    """None if ``options`` are valid ``dosimetry run`` options for a DICOM study, else the reason."""
    from dosimetry.cli import build_parser
    from dosimetry.option_ranges import OptionValueError

    refused = sorted(k for k in options if k in _RUN_OPTIONS_REFUSED)
    if refused:
        return f"{', '.join(refused)}: set by the nightly job itself or not for a DICOM study; remove"
    for key, value in options.items():
        if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)):
            return f"{key}: got a table, expected a value"
    try:
        build_parser().parse_args(["run", "STUDY", "--out", "OUT", *run_argv(options)])
    except OptionValueError as err:
        return str(err.error)
    except SystemExit:  # --help or --version given as an option
        return "help/version are not run options"
    except Exception as err:  # argparse usage errors (unknown option, missing value): one line from the parser
        return str(err)
    return None


def _read_studies_csv(check: _Checker, path: Path) -> dict:
    where = f"[run] studies_csv {path.name}"
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        check.fault(where, f"cannot read it ({getattr(err, 'strerror', None) or err})")
        return {}
    studies: dict = {}
    for number, row in enumerate(rows, start=2):
        keys = [(k, (row.get(k) or "").strip()) for k in STUDY_KEY_COLUMNS if (row.get(k) or "").strip()]
        if len(keys) != 1:
            check.fault(
                f"{where} line {number}", "needs exactly one of the columns AccessionNumber or StudyInstanceUID filled"
            )
            continue
        options = {
            k.strip(): v.strip()
            for k, v in row.items()
            if k and k.strip() not in STUDY_KEY_COLUMNS and v is not None and v.strip()
        }
        reason = check_run_options(options)
        if reason:
            check.fault(f"{where} line {number}", reason)
            continue
        if keys[0] in studies:
            check.fault(f"{where} line {number}", f"{keys[0][0]} appears twice")
            continue
        studies[keys[0]] = options
    return studies


def load_config(path: str | Path) -> NightlyConfig:
    """Read and check the configuration file.

    Raises
    ------
    ConfigError
        The file is missing or not TOML, or any value is wrong (every fault listed, ``; `` between them).
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the configuration ({err.strerror or err})") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    base = path.resolve().parent
    check = _Checker(data)
    check.unknown("top level", data, {"local", "pacs", "source", "query", "run", "store", "paths", "security", "job"})

    local_t = check.table("local", required="pacs" in data)  # the calling AE and the storage SCP
    local = _node(check, "local", local_t, pacs=False) if local_t is not None else None
    pacs_t = check.table("pacs", required=False)
    pacs = _node(check, "pacs", pacs_t, pacs=True) if pacs_t is not None else None

    source_t = check.table("source", required=False) or {}
    check.unknown("source", source_t, {"kind", "path"})
    kind = source_t.get("kind", "pacs")
    source_path = None
    if kind not in ("pacs", "folder"):
        check.fault("[source] kind", f'got {kind!r}, expected "pacs" or "folder"')
    elif kind == "folder":
        raw = source_t.get("path")
        if not isinstance(raw, str) or not raw.strip():
            check.fault("[source] path", "missing; give the folder the PACS exports studies to")
        else:
            source_path = (base / raw).resolve()
            if not source_path.is_dir():
                check.fault("[source] path", f"{source_path} is not a folder")
    elif pacs_t is None:
        check.fault("[pacs]", 'missing; add it, or set [source] kind = "folder"')

    query_t = check.table("query", required=False) or {}
    check.unknown("query", query_t, {"modalities", "lookback_days"})
    modalities = check.strings("[query] modalities", query_t.get("modalities", ["PT", "NM"]), ("PT", "NM"))
    lookback = check.integer("[query] lookback_days", query_t.get("lookback_days", 2), 0, 3650)

    run_t = dict(check.table("run", required=False) or {})
    csv_name = run_t.pop("studies_csv", None)
    reason = check_run_options(run_t)
    if reason:
        check.fault("[run]", reason)
    studies = {}
    if csv_name is not None:
        if not isinstance(csv_name, str) or not csv_name.strip():
            check.fault("[run] studies_csv", f"got {csv_name!r}, expected a file name")
        else:
            studies = _read_studies_csv(check, (base / csv_name).resolve())

    store_t = check.table("store", required=False) or {}
    check.unknown("store", store_t, {"send", "destination"})
    send = check.strings("[store] send", store_t.get("send", list(SENDABLE)), SENDABLE)
    if send and "report" in send:
        from dosimetry.report.html import find_chromium

        if find_chromium() is None:
            check.fault(
                "[store] send",
                '"report" needs headless Chromium to print the PDF, and none is installed '
                '(Debian: apt-get install chromium); install it or leave "report" out',
            )
    destination = store_t.get("destination", pacs.ae_title if pacs else None)
    if destination is not None and pacs is not None and destination != pacs.ae_title:
        check.fault(
            "[store] destination",
            f"got {destination!r}; results are stored to the [pacs] node, give its AE title {pacs.ae_title!r}",
        )
    if destination is not None and pacs_t is None:
        check.fault("[store] destination", "needs a [pacs] table (address and port of the destination)")

    paths_t = check.table("paths", required=False) or {}
    check.unknown("paths", paths_t, {"work", "results", "ledger"})
    resolved = {}
    for key, default in (("work", "work"), ("results", "results"), ("ledger", "ledger.sqlite")):
        raw = paths_t.get(key, default)
        if not isinstance(raw, str) or not raw.strip():
            check.fault(f"[paths] {key}", f"got {raw!r}, expected a path")
        else:
            resolved[key] = (base / raw).resolve()
    if source_path is not None:
        for key, value in resolved.items():
            if value == source_path or source_path in value.parents or value in source_path.parents:
                check.fault(
                    f"[paths] {key}",
                    f"{value} overlaps the input folder [source] path; the job never "
                    "writes into its input: choose another place",
                )

    security_t = check.table("security", required=False) or {}
    check.unknown("security", security_t, {"allowed_ae_titles"})
    allowed = security_t.get("allowed_ae_titles", [pacs.ae_title] if pacs else None)
    if allowed is None:
        allowed = ()
    elif allowed == []:
        check.fault(
            "[security] allowed_ae_titles",
            "got [], expected the AE titles that may send us studies (at least the PACS's)",
        )
        allowed = ()
    else:
        allowed = check.strings("[security] allowed_ae_titles", allowed)
    for title in allowed or ():
        check.ae_title("[security] allowed_ae_titles", title)

    job_t = check.table("job", required=False) or {}
    check.unknown("job", job_t, {"max_attempts", "settle_s"})
    max_attempts = check.integer("[job] max_attempts", job_t.get("max_attempts", 3), 1, 100)
    settle = job_t.get("settle_s", 5)
    if isinstance(settle, bool) or not isinstance(settle, (int, float)) or not 0 <= settle <= 3600:
        check.fault("[job] settle_s", f"got {settle!r}, expected seconds 0-3600")

    if local is not None and pacs is not None and (local.host, local.port) == (pacs.host, pacs.port):
        check.fault("[local] port", "the same address and port as [pacs]; give this program its own port")
    if check.faults:
        raise ConfigError(f"{path}: " + "; ".join(check.faults))
    return NightlyConfig(
        path=path.resolve(),
        local=local,
        pacs=pacs,
        source_kind=kind,
        source_path=source_path,
        modalities=modalities,
        lookback_days=lookback,
        run_options=run_t,
        studies=studies,
        send=send,
        destination=destination,
        work=resolved["work"],
        results=resolved["results"],
        ledger=resolved["ledger"],
        allowed_ae_titles=tuple(a.strip() for a in allowed or ()),
        max_attempts=max_attempts,
        settle_s=float(settle),
    )


def study_run_options(config: NightlyConfig, study_uid: str, accession: str) -> dict:
    """The ``dosimetry run`` options of one study: ``[run]``, then its CSV row (by StudyInstanceUID, else
    AccessionNumber) over them."""
    options = dict(config.run_options)
    row = config.studies.get(("StudyInstanceUID", study_uid))
    if row is None and accession:
        row = config.studies.get(("AccessionNumber", accession))
    options.update(row or {})
    return options
