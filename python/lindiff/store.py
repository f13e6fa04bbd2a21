"""The results store of :func:`lindiff.sweep`: a directory of Parquet files, one per finished task.

Layout
------
::

    DIR/
      _lindiff_store.json            format marker: {"format": "lindiff-sweep", "version": 2, ...}
      <32 hex digits>.parquet        the rows of one finished task (one row per configuration)
      .tmp-<…>.parquet               a write in progress (ignored by every reader; removed when stale)

- Every ``*.parquet`` file has the same schema (:data:`SCHEMA`): the parameter columns
  ``dataset, k, d, N, seed, ridge, train_time, T, schedule, sampler, sigma, final_noise`` and the
  measure columns (see :data:`MEASURE_COLUMNS`, :data:`EMPIRICAL_COLUMNS`). ``train_time = inf`` is
  the converged optimum; ``k`` is NaN for data sets; ``emp_*`` are NaN and ``n_samples`` is 0
  when no samples were drawn. Files of format 1 (before ``n_samples``) are read with
  ``n_samples = 0``, so their sample-based rows are recomputed when samples are asked for.
- A row is identified by its parameter columns (the *row key*). The file name is a stable hash
  (SHA-256 of a canonical JSON of the task's parameters, first 32 hex digits), so the same task
  always lands in the same file. Re-running a sweep computes only configurations whose key is
  absent, so a changed grid reuses every overlapping row.
- Writes are atomic: a task's rows go to a temporary file in the same directory (name starting
  with ``.``), which is flushed, fsync'ed and renamed (``os.replace``) over its final name; then the
  directory is fsync'ed. A ``kill -9`` loses at most the tasks in flight and never leaves a
  partial ``*.parquet``.

Reading without lindiff
-----------------------
::

    import pandas as pd
    df = pd.read_parquet("lindiff-results")        # every row of every finished task

pyarrow skips files whose names start with ``.`` or ``_`` (temporary files and the marker), and
all files share one schema, so this is the whole table. Should the same configuration have been
written twice (two concurrent sweeps into one directory), drop duplicates on the parameter
columns; :meth:`ResultStore.read` does that for you.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "EMPIRICAL_COLUMNS",
    "MEASURE_COLUMNS",
    "PARAM_COLUMNS",
    "ResultStore",
    "SCHEMA",
    "canonical_json",
    "row_key",
    "stable_hash",
]

FORMAT_VERSION = 2  # 2: n_samples (int, 0 = no samples drawn) after the emp_* columns
MARKER = "_lindiff_store.json"

#: Parameter columns (the row key), in order, with their Arrow types.
PARAM_COLUMNS: tuple[str, ...] = (
    "dataset", "k", "d", "N", "seed", "ridge", "train_time", "T", "schedule", "sampler", "sigma",
    "final_noise",
)
#: Measure columns, always present.
MEASURE_COLUMNS: tuple[str, ...] = (
    "kl_forward", "kl_reverse", "kl_opt_forward", "kl_opt_reverse", "excess_forward",
    "excess_reverse", "train_loss", "test_loss", "bayes_loss", "theory_large_n",
    "theory_ideal_forward", "theory_ideal_reverse", "theory_mp_forward", "theory_mp_reverse",
)
#: Sample-based measures (NaN unless the sweep ran with ``empirical=True``).
EMPIRICAL_COLUMNS: tuple[str, ...] = ("emp_kl_forward", "emp_kl_reverse", "n_samples")
#: Columns added since format 1 and the value an older file's rows get for them on reading.
_ADDED: dict[str, Any] = {"n_samples": 0}

_STR = ("dataset", "schedule", "sampler", "sigma")
_INT = ("d", "N", "seed", "T", "n_samples")
_BOOL = ("final_noise",)

_INSTALL = "pip install 'lindiff[sweep]'  (pandas, pyarrow, tqdm)"


def _require(module: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise ImportError(f"lindiff sweeps need {module.split('.')[0]}: {_INSTALL}") from exc


def _arrow_type(pa: Any, name: str) -> Any:
    if name in _STR:
        return pa.string()
    if name in _INT:
        return pa.int64()
    if name in _BOOL:
        return pa.bool_()
    return pa.float64()


def schema() -> Any:
    """The Arrow schema shared by every file of a store."""
    pa = _require("pyarrow")
    cols = PARAM_COLUMNS + MEASURE_COLUMNS + EMPIRICAL_COLUMNS
    return pa.schema([(c, _arrow_type(pa, c)) for c in cols])


SCHEMA = schema  # a callable, so that importing lindiff never imports pyarrow


# ---------------------------------------------------------------------- keys and hashes
def _canon(v: Any) -> Any:
    """JSON-ready canonical form: floats as their round-trip repr, NaN as null, tuples as lists."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return None if math.isnan(f) else repr(f)
    if isinstance(v, Mapping):
        return {str(k): _canon(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    if v is None or isinstance(v, str):
        return v
    raise TypeError(f"cannot canonicalise {type(v).__name__}")


def canonical_json(obj: Any) -> str:
    """A canonical JSON text (sorted keys, no spaces, floats by repr): equal inputs, equal text."""
    return json.dumps(_canon(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stable_hash(obj: Any, n: int = 32) -> str:
    """First ``n`` hex digits of SHA-256 of :func:`canonical_json` (never Python's ``hash()``)."""
    return hashlib.sha256(canonical_json(obj).encode("ascii")).hexdigest()[:n]


def _key_value(name: str, v: Any) -> Any:
    if name in _STR:
        return str(v)
    if name in _INT:
        return int(v)
    if name in _BOOL:
        return bool(v)
    f = float(v)
    return None if math.isnan(f) else f


def row_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The parameter columns of a row as a hashable tuple (NaN k → None, so keys compare equal)."""
    return tuple(_key_value(c, row[c]) for c in PARAM_COLUMNS)


# ---------------------------------------------------------------------- the store
class ResultStore:
    """A directory of Parquet files written atomically, one per finished task (see module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"results path {str(self.path)!r} exists and is not a directory")
        self.path.mkdir(parents=True, exist_ok=True)
        marker = self.path / MARKER
        if marker.exists():
            try:
                info = json.loads(marker.read_text())
            except ValueError as exc:
                raise ValueError(f"{marker} is not a lindiff store marker") from exc
            if info.get("format") != "lindiff-sweep" or int(info.get("version", 0)) > FORMAT_VERSION:
                raise ValueError(f"{self.path} holds a store of an unknown format/version: {info}")
            if int(info.get("version", 0)) < FORMAT_VERSION:  # readable: upgrade the marker only
                self._write_marker(marker)
        else:
            self._write_marker(marker)
        self._clean_stale_temp()

    def _write_marker(self, marker: Path) -> None:
        self._atomic_bytes(marker, json.dumps({
            "format": "lindiff-sweep", "version": FORMAT_VERSION,
            "key": list(PARAM_COLUMNS),
            "read_with": "pandas.read_parquet(DIR)",
        }, indent=1).encode())

    # ------------------------------------------------------------------ files
    def files(self) -> list[Path]:
        """Finished task files, sorted by name."""
        return sorted(p for p in self.path.glob("*.parquet") if not p.name.startswith((".", "_")))

    def has_task(self, key: str) -> bool:
        return (self.path / f"{key}.parquet").exists()

    def _clean_stale_temp(self, age: float = 3600.0) -> None:
        now = time.time()
        for p in self.path.glob(".tmp-*"):
            try:
                if now - p.stat().st_mtime > age:
                    p.unlink()
            except OSError:  # another process got there first
                pass

    def _fsync_dir(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # pragma: no cover - platforms without directory fds
            return
        try:
            os.fsync(fd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(fd)

    def _atomic_bytes(self, final: Path, data: bytes) -> None:
        tmp = self.path / f".tmp-{uuid.uuid4().hex}-{final.name}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        self._fsync_dir()

    # ------------------------------------------------------------------ write / read
    def write(self, key: str, columns: Mapping[str, Iterable[Any]]) -> Path:
        """Write one task's rows (a mapping column → values) atomically as ``<key>.parquet``."""
        pa = _require("pyarrow")
        pq = _require("pyarrow.parquet")
        sch = schema()
        n = len(next(iter(columns.values())))
        arrays = []
        for field in sch:
            vals = columns.get(field.name)
            if vals is None:
                vals = [_ADDED.get(field.name, math.nan)] * n
            arrays.append(pa.array(list(vals), type=field.type))
        table = pa.Table.from_arrays(arrays, schema=sch)
        final = self.path / f"{key}.parquet"
        tmp = self.path / f".tmp-{uuid.uuid4().hex}-{final.name}"
        try:
            with open(tmp, "wb") as fh:
                # Small files: no compression or dictionaries (they cost more than they save here).
                pq.write_table(table, fh, compression="none", use_dictionary=False, write_statistics=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()
        self._fsync_dir()
        return final

    def read_table(self, n_samples: int | None = None) -> Any:
        """All rows as one Arrow table; a row key written twice is kept once: rows made from
        ``n_samples`` samples first (when given), then rows with filled emp_*, then the first file
        by name."""
        pa = _require("pyarrow")
        pq = _require("pyarrow.parquet")
        sch = schema()
        tables = []
        for p in self.files():
            try:
                t = pq.read_table(p)
            except Exception as exc:  # not ours, or damaged outside lindiff
                raise ValueError(f"cannot read results file {p}: {exc}") from exc
            for name, fill in _ADDED.items():  # a format-1 file: no samples are known to match
                if name not in t.schema.names:
                    t = t.append_column(name, pa.array([fill] * t.num_rows, type=sch.field(name).type))
            if t.schema.names != sch.names:
                raise ValueError(f"results file {p} has columns {t.schema.names}, expected {sch.names}")
            tables.append(t.cast(sch))
        if not tables:
            return sch.empty_table()
        table = pa.concat_tables(tables)
        keys = [row_key(dict(zip(PARAM_COLUMNS, vals)))
                for vals in zip(*(table.column(c).to_pylist() for c in PARAM_COLUMNS))]
        # Prefer rows whose sample-based measures are filled, then the first file.
        emp = table.column("emp_kl_forward").to_pylist()
        made = table.column("n_samples").to_pylist()
        order = sorted(range(len(keys)), key=lambda i: (
            n_samples is not None and made[i] != n_samples, emp[i] is None or math.isnan(emp[i]), i))
        seen: set[tuple[Any, ...]] = set()
        keep = []
        for i in order:
            k = keys[i]
            if k not in seen:
                seen.add(k)
                keep.append(i)
        if keep != list(range(table.num_rows)):
            table = table.take(pa.array(sorted(keep), type=pa.int64()))
        return table

    def read(self, n_samples: int | None = None) -> Any:
        """All rows as a pandas DataFrame (see :meth:`read_table`)."""
        _require("pandas")
        return self.read_table(n_samples).to_pandas()

    def keys(self, n_samples: int | None = None) -> set[tuple[Any, ...]]:
        """Row keys present; with ``n_samples``, only rows whose sample-based measures are filled and
        were made from that many samples."""
        out: set[tuple[Any, ...]] = set()
        pq = _require("pyarrow.parquet")
        for p in self.files():
            names = pq.read_schema(p).names
            extra = [] if n_samples is None else ["emp_kl_forward"] + (["n_samples"] if "n_samples" in names else [])
            t = pq.read_table(p, columns=list(PARAM_COLUMNS) + extra)
            data = [t.column(c).to_pylist() for c in t.schema.names]
            for vals in zip(*data):
                if n_samples is not None:
                    emp, made = vals[len(PARAM_COLUMNS)], (vals[-1] if len(extra) == 2 else 0)
                    if emp is None or math.isnan(emp) or made != n_samples:
                        continue
                out.add(row_key(dict(zip(PARAM_COLUMNS, vals[:len(PARAM_COLUMNS)]))))
        return out
