"""The nightly job's configuration: every fault named in one line, exit 7; the ledger untouched."""

from __future__ import annotations

import pytest

from dosimetry.cli import main
from dosimetry.nightly.config import ConfigError, load_config, run_argv, study_run_options
from nightly_helpers import write_config


def _config(tmp_path, **kwargs):
    return write_config(tmp_path, our_port=11112, pacs_port=4242, **kwargs)


def test_the_example_configuration_is_valid(tmp_path):
    config = load_config(_config(tmp_path))
    assert config.local.ae_title == "Y90DOSI" and config.pacs.port == 4242 and config.pacs.retrieve == "C-MOVE"
    assert config.send == ("rtdose", "sr", "seg", "report") and config.allowed_ae_titles == ("ORTHANC",)
    assert config.work == tmp_path / "work" and config.ledger == tmp_path / "ledger.sqlite"  # relative to the file
    assert run_argv(config.run_options) == ["--residual-fraction", "0.03", "--lung-shunt", "0.05", "--method", "ldm"]


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("port = 4242", "port = 70000", "[pacs] port: got 70000, expected an integer 1-65535"),
        ('ae_title = "ORTHANC"', 'ae_title = "A_TITLE_MUCH_TOO_LONG"', "[pacs] ae_title: got 'A_TITLE_MUCH_TOO_LONG'"),
        ('retrieve = "C-MOVE"', 'retrieve = "C-PULL"', '[pacs] retrieve: got \'C-PULL\', expected "C-MOVE" or "C-GET"'),
        ("timeout_s = 10", "timeout_s = -1", "[pacs] timeout_s: got -1"),
        (
            'host = "127.0.0.1"\nport = 11112',
            'host = "localhost-ish"\nport = 11112',
            "[local] host: got 'localhost-ish'",
        ),
        ("lung_shunt = 0.05", "lung_shunt = 1.5", "[run]"),
        ('method = "ldm"', 'method = "magic"', "[run]"),
        ('method = "ldm"', 'method = "ldm"\nout = "x"', "[run]: out: set by the nightly job itself"),
        ('method = "ldm"', 'method = "ldm"\nno_such_option = 1', "[run]: unrecognized arguments: --no-such-option"),
        ('send = ["rtdose", "sr", "seg", "report"]', 'send = ["rtdose", "xray"]', "[store] send: got 'xray'"),
        ('destination = "ORTHANC"', 'destination = "ELSEWHERE"', "[store] destination: got 'ELSEWHERE'"),
        ("lookback_days = 2", 'lookback_days = "two"', "[query] lookback_days: got 'two'"),
        ('modalities = ["PT", "NM"]', 'modalities = ["MR"]', "[query] modalities: got 'MR'"),
        ('allowed_ae_titles = ["ORTHANC"]', "allowed_ae_titles = []", "[security] allowed_ae_titles: got []"),
        ("[paths]", "[pathz]", "[top level] pathz: unknown key"),
    ],
)
def test_each_fault_is_named(tmp_path, old, new, expected):
    path = _config(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)
    assert err.value.exit_code == 7


def test_several_faults_are_all_listed_in_one_line_and_the_command_exits_7(tmp_path, capsys):
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("port = 4242", "port = 0").replace('retrieve = "C-MOVE"', "retrieve = 3"))
    assert main(["nightly", "--config", str(path)]) == 7
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "[pacs] port: got 0" in err and "[pacs] retrieve: got 3" in err
    assert not (tmp_path / "ledger.sqlite").exists() and not (tmp_path / "work").exists()


def test_missing_file_and_bad_toml(tmp_path, capsys):
    assert main(["nightly", "--config", str(tmp_path / "none.toml")]) == 7
    assert "cannot read the configuration" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[local\nae_title = 1")
    assert main(["nightly", "--config", str(bad)]) == 7
    assert "not valid TOML" in capsys.readouterr().err


def test_bad_since_date_is_exit_7(tmp_path, capsys):
    assert main(["nightly", "--config", str(_config(tmp_path)), "--since", "yesterday"]) == 7
    assert "--since: got 'yesterday'" in capsys.readouterr().err


def test_per_study_csv_overrides_the_defaults_and_is_checked(tmp_path):
    (tmp_path / "treatments.csv").write_text("AccessionNumber,administered_gbq,lung_shunt\nACC1,2.5,0.1\n")
    path = _config(tmp_path, extra="")
    path.write_text(path.read_text().replace('method = "ldm"', 'method = "ldm"\nstudies_csv = "treatments.csv"'))
    config = load_config(path)
    options = study_run_options(config, "1.2.3", "ACC1")
    assert (
        options["administered_gbq"] == "2.5" and options["lung_shunt"] == "0.1" and options["residual_fraction"] == 0.03
    )
    assert study_run_options(config, "1.2.3", "OTHER")["lung_shunt"] == 0.05
    (tmp_path / "treatments.csv").write_text("AccessionNumber,administered_gbq\nACC1,-3\n,1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "treatments.csv line 2" in str(err.value) and "--administered-gbq" in str(err.value)
    assert "treatments.csv line 3: needs exactly one of the columns" in str(err.value)


def test_folder_source_must_not_overlap_the_outputs(tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    path = write_config(tmp_path, our_port=11112, pacs_port=None, source=share)
    path.write_text(path.read_text().replace('results = "results"', 'results = "share/results"'))
    with pytest.raises(ConfigError, match=r"\[paths\] results: .* overlaps the input folder"):
        load_config(path)


def test_the_readme_example_is_a_valid_configuration(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Nightly job") :]
    example = section[section.index("```toml") + len("```toml") : section.index("```", section.index("```toml") + 7)]
    path = tmp_path / "nightly.toml"
    path.write_text(example)
    config = load_config(path)
    assert config.pacs.ae_title == "ORTHANC" and config.local.port == 11112 and config.max_attempts == 3
