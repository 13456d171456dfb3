"""Method parameters: every numeric one finite and inside its declared range, however it is given."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest

from sparsebench.cli import main
from sparsebench.errors import InvalidSpecError
from sparsebench.params import NumericParam, Range, numeric_params, param
from sparsebench.pruning import methods

NUMERIC = [(name, p) for name in methods.list() for p in numeric_params(methods.get(name).Params)]


def _outside(p: NumericParam) -> float:
    """A finite value of the parameter's type just outside its declared range."""
    r = p.range
    assert r is not None
    if r.ge is not None:
        return p.type(r.ge - 1)
    if r.gt is not None:
        return p.type(r.gt)
    if r.le is not None:
        return p.type(r.le + 1)
    return p.type(r.lt)


def test_there_are_numeric_params_to_check():
    assert {"owl", "sparsegpt", "ria", "gblm", "dsnot"} <= {name for name, _ in NUMERIC}


@pytest.mark.parametrize("method,p", NUMERIC, ids=[f"{n}.{p.name}" for n, p in NUMERIC])
def test_every_numeric_param_declares_a_range_and_rejects_what_is_outside(method, p):
    cls = methods.get(method)
    assert p.range is not None and str(p.range), f"{method}.{p.name} declares no range; use param(default, ge=..., ...)"
    defaults = cls.Params()
    cls(defaults)  # the defaults are valid
    for bad in (math.nan, math.inf, -math.inf, _outside(p)):
        # Python API
        with pytest.raises(InvalidSpecError, match=rf"^method '{method}': parameter {p.name} must be "):
            cls(dataclasses.replace(defaults, **{p.name: bad}))
        # string options, as the CLI's --param and grid files give them
        with pytest.raises(InvalidSpecError, match=rf"parameter {p.name}"):
            cls.from_options({p.name: str(bad)})


def test_the_error_names_the_parameter_and_its_range():
    with pytest.raises(InvalidSpecError) as err:
        methods.get("owl").from_options({"m": "nan"})
    assert str(err.value) == "method 'owl': parameter m must be a finite number > 0, got nan"
    with pytest.raises(InvalidSpecError, match=re.escape("parameter lam must be a finite number in [0, 1), got 1.0")):
        methods.get("owl").from_options({"lam": "1"})
    with pytest.raises(InvalidSpecError, match="parameter blocksize must be an integer, got 1.5"):
        cls = methods.get("sparsegpt")
        cls(cls.Params(blocksize=1.5))


def test_boundaries_inside_the_range_are_accepted():
    assert methods.get("owl").from_options({"lam": "0"}).params.lam == 0.0
    assert methods.get("ria").from_options({"a": "0"}).params.a == 0.0
    assert methods.get("sparsegpt").from_options({"blocksize": "1"}).params.blocksize == 1


@pytest.mark.parametrize("bounds,text", [
    (Range(ge=0, lt=1), "in [0, 1)"), (Range(gt=0, le=2.5), "in (0, 2.5]"), (Range(gt=0), "> 0"),
    (Range(ge=1), ">= 1"), (Range(le=3), "<= 3"), (Range(lt=3), "< 3"), (Range(), ""),
])
def test_range_reads_as_written(bounds, text):
    assert str(bounds) == text


def test_param_stores_its_range_in_field_metadata():
    @dataclasses.dataclass(frozen=True)
    class P:
        x: float = param(0.5, gt=0, lt=1)
        n: int = 3
        flag: bool = True

    (x, n) = numeric_params(P)
    assert (x.name, x.type, x.range) == ("x", float, Range(gt=0, lt=1))
    assert (n.name, n.type, n.range) == ("n", int, None)  # undeclared: finite only (the contract flags it)


def test_cli_rejects_nan_with_exit_2_and_writes_nothing(tmp_path, capsys):
    db = tmp_path / "never.db"
    with pytest.raises(SystemExit) as exit_:
        main(["run", "-m", "owl", "--param", "m=nan", "--db", f"sqlite:///{db}", "--no-progress"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err == "error: method 'owl': parameter m must be a finite number > 0, got nan\n"
    assert not db.exists()
