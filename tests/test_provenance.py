"""Provenance: quiet outside a git checkout, threads recorded, converted-weights digests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from sparsebench import provenance

SOURCE = Path(provenance.__file__)


def test_git_sha_outside_a_checkout_is_quiet(tmp_path):
    """A copy of the module outside any git checkout: a release version, and nothing on stderr."""
    copy = tmp_path / "provenance_copy.py"
    copy.write_text(SOURCE.read_text())
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('p', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); print(m.git_sha())")
    done = subprocess.run([sys.executable, "-c", code, str(copy)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("release-") and done.stderr == "", done.stderr


def test_threads_are_provenance_and_the_hardware_name_has_none():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = (provenance.collect("cpu")["threads"], provenance.hardware_name("cpu"))
        torch.set_num_threads(2)
        two = (provenance.collect("cpu")["threads"], provenance.hardware_name("cpu"))
    finally:
        torch.set_num_threads(before)
    assert one[0] == 1 and two[0] == 2 and one[1] == two[1]
    assert provenance.hardware_label("cpu").endswith(f"({before} thread{'' if before == 1 else 's'})")


def test_the_cpu_name_tells_generations_with_one_model_name_apart(monkeypatch, tmp_path):
    """Two VMs that both call their CPU "AMD EPYC" (Zen 3 with AVX2, Zen 4 with AVX-512) get different
    hardware names, so their timings are never pooled; a CPU without these fields keeps its name."""
    def name_for(cpuinfo: str) -> str:
        (tmp_path / "cpuinfo").write_text(cpuinfo)
        real = provenance.Path
        monkeypatch.setattr(provenance, "Path", lambda p: real(tmp_path / "cpuinfo") if p == "/proc/cpuinfo" else real(p))
        return provenance.hardware_name("cpu")

    block = "processor\t: {n}\ncpu family\t: 25\nmodel\t\t: {model}\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 {more}\n"
    zen3 = name_for(block.format(n=0, model=1, more="") + "\n" + block.format(n=1, model=1, more=""))
    zen4 = name_for(block.format(n=0, model=17, more="avx512f avx512_bf16"))
    assert zen3 == "AMD EPYC (family 25 model 1, AVX2)" and zen4 == "AMD EPYC (family 25 model 17, AVX-512)"
    assert name_for("processor\t: 0\nmodel name\t: Some CPU\n") == "Some CPU"


def test_folder_digest_follows_the_content_and_is_cached(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"x" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.json").write_text("{}")
    first = provenance.folder_digest(tmp_path)
    assert (tmp_path / provenance.DIGEST_FILE).is_file() and provenance.folder_digest(tmp_path) == first
    (tmp_path / "new.bin").write_bytes(b"y" * 1000)
    (tmp_path / "new.bin").replace(tmp_path / "a.bin")  # same name and size, new content (as a conversion writes it)
    assert provenance.folder_digest(tmp_path) != first
