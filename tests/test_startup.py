"""Commands that start at once: what a ready .pte's profile needs is read without ExecuTorch's compiler."""

import os
import subprocess
import sys

from rebirth.profiler.etrecord import _parse, load_source_map


def test_an_etrecords_source_map_is_read_once_then_from_the_cache_without_the_compiler(firenet_ptes, tmp_path):
    etrecord = firenet_ptes["xnnpack"].with_suffix(".etrecord")
    env = dict(os.environ, REBIRTH_CACHE=str(tmp_path / "cache"))
    first = load_source_map(etrecord)  # this process's cache (the session's), whatever it held
    assert first == _parse(etrecord, "forward")
    code = ("import sys\nfrom rebirth.profiler.etrecord import load_source_map\n"
            f"source = load_source_map({str(etrecord)!r})\n"
            "print(len(source.nodes), 'executorch.exir' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert [run.stdout.split() for run in runs] == [[str(len(first.nodes)), "True"],
                                                     [str(len(first.nodes)), "False"]], runs[0].stderr
    assert len(list((tmp_path / "cache" / "source-maps").iterdir())) == 1
