"""`rebirth report` and `rebirth-profile --html` as a user types them: files written, the terminal
headline, and one clear line with exit code 2 for a wrong file."""


import pytest

from rebirth import cli
from tests.synthetic import slimmed_pair


@pytest.fixture
def saved(tmp_path):
    before, after, slim = slimmed_pair(ops=80, samples=20)
    before.save(tmp_path / "before.json")
    after.save(tmp_path / "after.json")
    slim.save(tmp_path / "slim.json")
    return tmp_path, before, after


def test_report_compares_two_profiles_in_html_and_in_the_terminal(saved, capsys):
    folder, before, after = saved
    html = folder / "nested" / "r.html"
    assert cli.main(["report", str(folder / "before.json"), str(folder / "after.json"),
                     "--slim", str(folder / "slim.json"), "-o", str(html)]) == 0
    out = capsys.readouterr().out
    assert f"{before.latency.p50 / after.latency.p50:.2f}×" in out and f"report written to {html}" in out
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "plotly" in page and "stage0" in page


def test_report_of_one_profile(saved, capsys):
    folder, _, _ = saved
    assert cli.main(["report", str(folder / "before.json"), "-o", str(folder / "one.html")]) == 0
    assert (folder / "one.html").stat().st_size > 1_000_000  # plotly.js is inside
    assert "Summary by op type" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["missing.json"], "no such profile file"),
    (["before.json", "slim.json"], "not a rebirth profile"),
    (["before.json", "after.json", "--slim", "before.json"], "slim"),
    (["before.json", "-o", "before.json/r.html"], "cannot write the report"),
])
def test_a_wrong_file_is_one_line_and_exit_2(saved, capsys, monkeypatch, args, message):
    folder, _, _ = saved
    monkeypatch.chdir(folder)
    assert cli.main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rebirth: error:") and message in err, err
    assert not (folder / "report.html").exists()


def test_profile_writes_its_html_report(firenet_ptes, tmp_path, capsys):
    html = tmp_path / "fire.html"
    assert cli.profile_main([str(firenet_ptes["portable"]), "--iterations", "3", "--html", str(html)]) == 0
    assert f"report written to {html}" in capsys.readouterr().out
    page = html.read_text()
    assert "firenet_portable" in page and "fire1" in page
