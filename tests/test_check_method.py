"""`sparsebench check-method`: passes on every registered method, fails readably on broken ones."""

from __future__ import annotations

import textwrap

import pytest

from sparsebench.cli import main
from sparsebench.contract import check_method, load_method_source, summary
from sparsebench.errors import SparsebenchError
from sparsebench.patterns import Block
from sparsebench.pruning import methods
from sparsebench.suites import suites

HEADER = """
from dataclasses import dataclass
import torch
from sparsebench.masks import select_mask
from sparsebench.patterns import Unstructured
from sparsebench.pruning import MethodMeta, ScoreMethod, methods
"""

BROKEN = {
    # name: (body, the failing check, words the reason must contain)
    "undershoot": ("""
@methods.register("undershoot")
class Undershoot(ScoreMethod):
    meta = MethodMeta("prunes half of what it is asked to")
    def score(self, ctx, layer):
        return layer.weight.detach().abs()
    def select(self, ctx, layer, scores):
        return select_mask(scores, ctx.pattern, ctx.sparsity_for(layer) / 2)
""", "target sparsity met", "achieved 0.2500, target 0.5000"),
    "ignores-nm": ("""
@methods.register("ignores-nm")
class IgnoresNM(ScoreMethod):
    meta = MethodMeta("always unstructured, even when asked for N:M")
    def score(self, ctx, layer):
        return layer.weight.detach().abs()
    def select(self, ctx, layer, scores):
        return select_mask(scores, Unstructured(), ctx.sparsity_for(layer))
""", "N:M valid", "more than N"),
    "unseeded": ("""
@methods.register("unseeded")
class Unseeded(ScoreMethod):
    meta = MethodMeta("random scores from the global generator")
    def score(self, ctx, layer):
        return torch.rand(layer.shape)
""", "same seed, same mask", "masks differ"),
    "touches-norms": ("""
@methods.register("touches-norms")
class TouchesNorms(ScoreMethod):
    meta = MethodMeta("also scales every norm weight")
    def score(self, ctx, layer):
        with torch.no_grad():
            for name, p in ctx.loaded.model.named_parameters():
                if "norm" in name:
                    p.mul_(0.5)
        return layer.weight.detach().abs()
""", "only targeted layers change", "outside the prunable layers"),
    "crashes": ("""
@methods.register("crashes")
class Crashes(ScoreMethod):
    meta = MethodMeta("raises")
    def score(self, ctx, layer):
        raise RuntimeError("shape mismatch in my score")
""", "prunes without error", "RuntimeError: shape mismatch in my score"),
    "undeclared-range": ("""
@dataclass(frozen=True)
class PowerParams:
    power: float = 1.0
@methods.register("undeclared-range")
class UndeclaredRange(ScoreMethod):
    Params = PowerParams
    meta = MethodMeta("a numeric parameter without a declared range")
    def score(self, ctx, layer):
        return layer.weight.detach().abs() ** self.params.power
""", "parameter ranges declared", "no range for power"),
}


@pytest.fixture
def unregister():
    before = set(methods.list())
    yield
    for name in set(methods.list()) - before:
        methods.unregister(name)


@pytest.mark.parametrize("method", methods.list())
def test_every_registered_method_passes(method, tiny_model_dirs):
    # one family here (test_method_contract.py covers all three); `check-method` defaults to all
    checks = check_method(method, {"llama": tiny_model_dirs["llama"]}, 0.5, suites.get("unit").calibration)
    failed = [c for c in checks if not c.passed]
    assert not failed, failed
    ok, total = summary(checks)
    meta = methods.get(method).meta
    assert ok == total >= (1 if not meta.prunes else 4)
    if meta.prunes:  # the contract covers block and global patterns wherever a method declares them
        checked = {c.pattern for c in checks}
        assert ("block4x4" in checked) == (Block in meta.patterns), checked
        assert ("unstructured-global" in checked) == (not meta.needs_calibration), checked


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_method_fails_with_reason(case, tiny_model_dirs, tmp_path, unregister):
    body, check, reason = BROKEN[case]
    path = tmp_path / f"{case.replace('-', '_')}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    (name,) = load_method_source(str(path))
    checks = check_method(name, {"llama": tiny_model_dirs["llama"]}, 0.5, suites.get("unit").calibration)
    failed = [c for c in checks if not c.passed]
    assert any(c.check == check and reason in c.detail for c in failed), failed


def test_cli_pass_and_fail(tmp_path, capsys, unregister):
    with pytest.raises(SystemExit) as exit_:
        main(["check-method", "magnitude", "--family", "gpt2"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and "PASS: magnitude meets the method contract" in out
    path = tmp_path / "undershoot.py"
    path.write_text(HEADER + textwrap.dedent(BROKEN["undershoot"][0]))
    with pytest.raises(SystemExit) as exit_:
        main(["check-method", str(path), "--family", "llama"])
    out = capsys.readouterr().out
    assert exit_.value.code == 1
    # unstructured and block4x4 undershoot (target and verification each); unstructured-global,
    # selected by the driver over all layers, and N:M, which fixes its own sparsity, do not
    assert "FAIL: undershoot failed 4 of 18 checks; first: target sparsity met on llama unstructured: achieved 0.2500, target 0.5000" in out


def test_bad_targets_are_one_line_errors(tmp_path, capsys, unregister):
    with pytest.raises(SystemExit) as exit_:
        main(["check-method", "magnitud"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "did you mean 'magnitude'" in err and err.count("\n") == 1
    empty = tmp_path / "nothing.py"
    empty.write_text("x = 1\n")
    with pytest.raises(SparsebenchError, match="registers no method"):
        load_method_source(str(empty))
    bad = tmp_path / "syntax.py"
    bad.write_text("def (:\n")
    with pytest.raises(SparsebenchError, match="importing .* failed: SyntaxError"):
        load_method_source(str(bad))
    with pytest.raises(SparsebenchError, match="no such method file"):
        load_method_source(str(tmp_path / "missing.py"))
