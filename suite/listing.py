"""Tables of registry contents for ``sparsebench list``."""

from __future__ import annotations

import dataclasses

import pandas as pd


def _methods() -> pd.DataFrame:
    from .pruning import methods

    rows = []
    for name, cls in methods.items():
        m = cls.meta
        rows.append({
            "method": name,
            "summary": m.summary,
            "paper": f"{m.citation} {m.paper or ''}".strip() or "-",
            "needs": ", ".join(k for k, on in (("calibration", m.needs_calibration), ("gradients", m.needs_gradients),
                                                ("retraining", not m.one_shot)) if on) or "-",
            "updates weights": "yes" if m.updates_weights else "no",
            "patterns": ", ".join(t.__name__.lower() for t in m.patterns) if m.prunes else "-",
            "defaults": ", ".join(f"{f.name}={getattr(cls.Params(), f.name)!r}" for f in dataclasses.fields(cls.Params)) or "-",
        })
    return pd.DataFrame(rows)


def _models() -> pd.DataFrame:
    from .models import models

    return pd.DataFrame([
        {"model": n, "aliases": ",".join(models.aliases(n)) or "-", "kind": e.kind, "family": e.family, "params": e.params,
         "sources": " -> ".join(s.describe() for s in e.asset.sources)}
        for n, e in models.items()
    ])


def _tasks() -> pd.DataFrame:
    from .task import tasks

    return pd.DataFrame([
        {"task": n, "version": c.meta.version, "metric": c.meta.metric, "better": "higher" if c.meta.higher_is_better else "lower",
         "modality": c.meta.modality, "dataset": c.meta.dataset, "description": c.meta.description}
        for n, c in tasks.items()
    ])


def _kernels() -> pd.DataFrame:
    import torch

    from .kernel import kernels

    rows = []
    for n, cls in kernels.items():
        k = cls()
        ok, why = k.available(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
        rows.append({"kernel": n, "patterns": ",".join(t.__name__.lower() for t in k.support.patterns),
                     "devices": ",".join(k.support.devices), "available here": "yes" if ok else f"no: {why}",
                     "description": k.description})
    return pd.DataFrame(rows)


def _suites() -> pd.DataFrame:
    from .suites import suites

    return pd.DataFrame([
        {"suite": n, "version": s.version, "modality": s.modality, "calibration": str(s.calibration), "tasks": ",".join(s.tasks),
         "description": s.description}
        for n, s in suites.items()
    ])


def _datasets() -> pd.DataFrame:
    from .data import datasets

    return pd.DataFrame([
        {"dataset": n, "description": a.description, "sources": " -> ".join(s.describe() for s in a.sources)}
        for n, a in datasets.items()
    ])


def _sampling_rules() -> pd.DataFrame:
    from .calibration_data import sampling_rules

    return pd.DataFrame([{"rule": n, "description": r.description} for n, r in sampling_rules.items()])


TABLES = {"methods": _methods, "models": _models, "tasks": _tasks, "kernels": _kernels, "suites": _suites, "datasets": _datasets,
          "sampling-rules": _sampling_rules}


def table(kind: str, width: int | None = None) -> str:
    """The ``kind`` registry as a table that fits ``width`` columns (default: the terminal's)."""
    from .terminal import fit

    df = TABLES[kind]()
    if df.empty:
        return f"no {kind} registered"
    return fit(df, width)
