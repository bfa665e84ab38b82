"""`logoutguard crs report`: per-file and per-PL counts and every skipped rule with its reason."""

from __future__ import annotations

from logoutguard.cli import main

from .test_loader import crs_folder  # noqa: F401  (fixture)


def test_report_lists_files_levels_and_skipped_rules(crs_folder, capsys):  # noqa: F811
    (crs_folder / "rules" / "REQUEST-950-Y.conf").write_text(
        'SecRule RESPONSE_BODY "@geoLookup" "id:950001,phase:4,pass"\n'
        'SecRule RESPONSE_BODY "@rx x" "id:950002,phase:4,pass,tag:\'paranoia-level/2\'"\n'
    )
    assert main(["crs", "report", str(crs_folder), "--no-engine-rules"]) == 0
    out = capsys.readouterr().out
    assert "9 rules loaded, 1 skipped" in out
    assert "REQUEST-950-Y.conf" in out and "paranoia level 2" in out
    assert "REQUEST-950-Y.conf:1 rule 950001: operator @geoLookup is not supported" in out
    assert "PL2                   1       0" in out


def test_report_on_a_missing_path_says_so(capsys):
    assert main(["crs", "report", "/nonexistent/crs"]) == 2
    assert capsys.readouterr().err == (
        "logoutguard crs: /nonexistent/crs: no such file or folder (give crs-setup.conf or a CRS folder)\n"
    )
