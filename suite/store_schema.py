"""The results database's tables (SQLAlchemy 2 declarative) and their schema version: one row per
run (identity columns, provenance, the spec it was run from), its metrics (with per-item scores
and the bootstrap interval) and its timings (per layer or end to end; standalone kernel timings
have no run). :mod:`sparsebench.store` reads and writes them; result bundles are checked
against their columns (:mod:`sparsebench.bundle_schema`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SCHEMA_VERSION = 3


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class Meta(Base):
    __tablename__ = "sparsebench_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spec_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    status: Mapped[str] = mapped_column(String(16))  # "completed" | "failed"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    method: Mapped[str] = mapped_column(String(128), index=True)
    method_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    method_source: Mapped[str] = mapped_column(String(64))  # sha256 of the method's source (sparsebench.source_hash)
    model: Mapped[str] = mapped_column(String(256), index=True)
    model_revision: Mapped[str] = mapped_column(String(128))
    pattern: Mapped[str] = mapped_column(String(32))
    sparsity: Mapped[float] = mapped_column(Float)
    achieved_sparsity: Mapped[float | None] = mapped_column(Float, nullable=True)
    suite: Mapped[str] = mapped_column(String(64), index=True)
    suite_version: Mapped[str] = mapped_column(String(32))
    tasks: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"names": [...]}
    seed: Mapped[int] = mapped_column(Integer)
    calibration: Mapped[str | None] = mapped_column(String(256), nullable=True)
    device: Mapped[str] = mapped_column(String(64))
    hardware: Mapped[str] = mapped_column(String(256))
    prune_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    eval_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    sparsebench_version: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(64))
    transformers_version: Mapped[str] = mapped_column(String(64))
    git_sha: Mapped[str] = mapped_column(String(64))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"identity": what the spec hash is of, "request": ...}
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[list[MetricRow]] = relationship(back_populates="run", cascade="all, delete-orphan")
    timings: Mapped[list[TimingRow]] = relationship(back_populates="run", cascade="all, delete-orphan")


class MetricRow(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(128))
    task_version: Mapped[str] = mapped_column(String(32))
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    higher_is_better: Mapped[bool]
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    items: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # ItemScores.payload(): ids, scores[, tokens]
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)  # the bootstrap interval over the items
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_level: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_resamples: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ci_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    run: Mapped[Run] = relationship(back_populates="metrics")


class TimingRow(Base):
    """A latency measurement: per layer (microbenchmark) or end to end; standalone or with a run."""

    __tablename__ = "timings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    scope: Mapped[str] = mapped_column(String(32))  # "layer" | "prefill" | "decode"
    kernel: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # "ok" | "unsupported" | "failed"
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pattern: Mapped[str] = mapped_column(String(32))
    sparsity: Mapped[float] = mapped_column(Float)
    dtype: Mapped[str] = mapped_column(String(32))
    device: Mapped[str] = mapped_column(String(64))
    hardware: Mapped[str] = mapped_column(String(256))
    shape: Mapped[dict[str, Any]] = mapped_column(JSON)  # {"out":..,"in":..,"tokens":..} or model info
    median_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    p10_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    p90_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    iterations: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dense_median_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    speedup: Mapped[float | None] = mapped_column(Float, nullable=True)
    ideal_speedup: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_abs_error: Mapped[float | None] = mapped_column(Float, nullable=True)
    threads: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    run: Mapped[Run | None] = relationship(back_populates="timings")
