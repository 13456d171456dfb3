"""The terminal shows sparsebench's own messages; third-party warnings and bars only when asked for."""

from __future__ import annotations

import logging
import warnings

import pytest
from tqdm.auto import tqdm

from sparsebench import logs
from sparsebench.task import tasks

LIBRARIES = ("transformers", "datasets", "huggingface_hub")


@pytest.fixture
def restore_logging(monkeypatch):
    """logs.configure changes process-wide logging: put everything back afterwards."""
    root = logging.getLogger()
    handlers, level, showwarning = root.handlers[:], root.level, warnings.showwarning
    library_levels = {name: logging.getLogger(name).level for name in LIBRARIES}
    for variable in ("TRANSFORMERS_VERBOSITY", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY"):
        monkeypatch.delenv(variable, raising=False)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    warnings.showwarning = showwarning
    for name, lib_level in library_levels.items():
        logging.getLogger(name).setLevel(lib_level)


@pytest.fixture
def tiny_llama(tiny_model_dirs, capfd):
    from sparsebench.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(tiny_model_dirs["llama"])))
    capfd.readouterr()  # what loading printed is not the task's
    return loaded


def _zero_shot(loaded) -> None:
    rows = tasks.get("piqa").from_mapping({"limit": 2, "batch_size": 2}).evaluate(loaded, progress=False)
    assert rows[0].n == 2


def test_default_zero_shot_evaluation_prints_nothing_third_party(tiny_llama, capfd, restore_logging, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git checkout: lm-eval's `git describe` would print "fatal: ..."
    logs.configure(verbose=False)
    _zero_shot(tiny_llama)
    err = capfd.readouterr().err
    assert "WARNING" not in err and "lm_eval" not in err
    assert "fatal" not in err
    assert "it/s" not in err and "%|" not in err  # no progress bar with progress=False


def test_verbose_sends_third_party_warnings_to_the_log(tiny_llama, capfd, restore_logging):
    logs.configure(verbose=True)
    _zero_shot(tiny_llama)
    err = capfd.readouterr().err
    assert "WARNING lm_eval.models.huggingface: Passed an already-initialized model" in err


def test_own_records_and_warnings_still_reach_the_terminal(capfd, restore_logging):
    import lm_eval

    import sparsebench.registry

    logs.configure(verbose=False)
    logging.getLogger("sparsebench.runner").warning("own record")
    logging.getLogger("lm_eval.evaluator").warning("their record")
    logging.getLogger("lm_eval.evaluator").error("their error")
    warnings.warn_explicit("own warning", UserWarning, sparsebench.registry.__file__, 1)
    warnings.warn_explicit("their warning", UserWarning, lm_eval.__file__, 1)
    err = capfd.readouterr().err
    assert "WARNING sparsebench.runner: own record" in err and "ERROR lm_eval.evaluator: their error" in err
    assert "WARNING sparsebench.registry:" in err and "own warning" in err
    assert "their record" not in err and "their warning" not in err


def test_progress_bars_hides_every_tqdm_bar_in_its_block():
    with logs.progress_bars(False):
        assert tqdm(range(3)).disable
    assert not tqdm(range(3), disable=False).disable
    with logs.progress_bars(True):
        assert not tqdm(range(3), disable=False).disable
