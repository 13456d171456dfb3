"""The generic registry: registration, duplicates, lookups with suggestions, entry-point plugins."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from sparsebench.errors import UnknownNameError
from sparsebench.registry import DuplicateNameError, Registry


def test_decorator_registration_aliases_and_listing():
    reg: Registry[type] = Registry("widget", entry_point_group="sparsebench.test-widgets")

    @reg.register("alpha", aliases=("a",))
    class Alpha:
        pass

    reg.register("beta", int)
    assert reg.list() == ["alpha", "beta"]
    assert reg.get("a") is Alpha and reg.get("ALPHA") is Alpha
    assert Alpha.name == "alpha"
    assert "a" in reg and "gamma" not in reg


def test_duplicate_name_is_an_error():
    reg: Registry[int] = Registry("widget", entry_point_group="sparsebench.test-widgets")
    reg.register("x", 1)
    with pytest.raises(DuplicateNameError):
        reg.register("x", 2)


def test_unknown_name_lists_close_matches():
    from sparsebench.pruning import methods

    with pytest.raises(UnknownNameError) as err:
        methods.get("magnitud")
    msg = str(err.value)
    assert "unknown method 'magnitud'" in msg and "'magnitude'" in msg
    assert "\n" not in msg


def test_every_registry_has_builtins():
    from sparsebench.data import datasets
    from sparsebench.models import models
    from sparsebench.pruning import methods
    from sparsebench.suites import suites
    from sparsebench.task import tasks

    assert {"dense", "magnitude", "random"} <= set(methods.list())
    assert "llama" in models.list() and "wikitext2" in tasks.list()
    assert {"quick", "paper"} <= set(suites.list()) and "wikitext2-test" in datasets.list()


@pytest.mark.slow
def test_plugin_distribution_registers_its_method(tmp_path):
    """Install a real (tiny) third-party distribution and see its method through entry points."""
    src = tmp_path / "plugin-src"
    (src / "sb_plugin_demo").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "sb-plugin-demo"
        version = "0.1"
        [project.entry-points."sparsebench.methods"]
        halfmag = "sb_plugin_demo:HalfMagnitude"
    """))
    (src / "sb_plugin_demo" / "__init__.py").write_text(textwrap.dedent('''
        from sparsebench.pruning import MethodMeta, ScoreMethod

        class HalfMagnitude(ScoreMethod):
            """|W| / 2: a plugin for the entry-point test."""
            meta = MethodMeta("half magnitude (plugin test)")
            def score(self, ctx, layer):
                return layer.weight.detach().abs() / 2
    '''))
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", "from sparsebench.pruning import methods; c = methods.get('halfmag'); "
                          "print(c.name, c.meta.summary)"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "halfmag half magnitude (plugin test)"
