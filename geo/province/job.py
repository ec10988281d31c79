"""The province job on Apache Spark: ``onemap province run --data DIR --out DIR``.

Two kinds of work (design notes: README, "Province view on Spark"):

* **Counts across the province** are Spark's own aggregations over the partitioned hazard
  GeoParquet: per district, town, month, category and severity, and per H3 cell at
  resolutions 5-9. The cells are made from lon/lat inside Spark in Arrow batches
  (``mapInArrow`` calling ``geo.h3index`` / h3ronpy on whole columns), never a Python call
  per row.
* **District-bound figures** (closed loop, inspection compliance, scorecards, Gi* hotspots
  with each district's own study area and weights, coverage on each district's road graph)
  run one district per Spark task through ``geo.province.figures.district_task``: the very
  functions of the district dashboard, so the figures are identical to the embedded path.

Nothing is fetched at run time: pyspark comes from its wheel, Java from the system; no
``--packages``. Every executor needs onemap installed (the same wheel) and read access to
the dataset directory (a shared path: NFS, or a mounted object store).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from geo import h3index, partition, store
from geo.errors import ValidationError
from geo.province.figures import FIGURES, district_task, from_ipc
from geo.settings import Settings

CELL_RESOLUTIONS: tuple[int, ...] = (5, 6, 7, 8, 9)
COUNT_KEYS: tuple[str, ...] = ("district", "town", "month", "category", "severity")
CELL_SCHEMA = ("district string, month string, category string, severity string, "
               + ", ".join(f"c{r} long" for r in CELL_RESOLUTIONS))


def spark_session(master: str, app: str = "onemap-province", shuffle_partitions: int | None = None) -> Any:
    """A Spark session on ``master`` (``local[N]`` or ``spark://host:port``); the workers run
    this Python (``PYSPARK_PYTHON`` unless already set) and the UI is off."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName(app)
               .config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.session.timeZone", "UTC"))
    if shuffle_partitions:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    return builder.getOrCreate()


def add_cells(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``: each hazard batch with its H3 cells at res 5-9 (from lon/lat, whole columns).

    The cells are made as ``geo.store`` makes its ``h3_r*`` columns (``h3index.index_points``:
    the res-10 cell, the others its parents), so they equal the district database's."""
    for batch in batches:
        lon = batch.column("lon").to_numpy(zero_copy_only=False).astype(np.float64)
        lat = batch.column("lat").to_numpy(zero_copy_only=False).astype(np.float64)
        # as the store indexes points: the finest stored cell, the coarser ones its parents
        cells = h3index.index_points(lon, lat, (*CELL_RESOLUTIONS, max(store.POINT_RESOLUTIONS)))
        cols: list[pa.Array] = [batch.column(c) for c in ("district", "month", "category", "severity")]
        for res in CELL_RESOLUTIONS:
            cols.append(pa.array(np.asarray(cells[res], dtype=np.uint64).astype(np.int64)))
        names = ["district", "month", "category", "severity", *(f"c{r}" for r in CELL_RESOLUTIONS)]
        yield pa.RecordBatch.from_arrays(cols, names=names)


def _hazards(spark: Any, data: Path) -> Any:
    from pyspark.sql import functions as F

    path = str(data / "hazard")
    frame = spark.read.option("basePath", path).parquet(path)
    return frame.withColumn("district", F.col("district").cast("string")).withColumn(
        "month", F.col("month").cast("string"))


def count_hazards(spark: Any, data: Path, out: Path) -> dict[str, int]:
    """Write ``hazard_counts`` (district, town, month, category, severity) and ``hazard_cells``
    (res, cell, district, month, category, severity) as Parquet; return their row counts."""
    from pyspark.sql import functions as F

    hz = _hazards(spark, data)
    counts = hz.groupBy(*COUNT_KEYS).agg(F.count(F.lit(1)).alias("hazards"))
    counts.write.mode("overwrite").parquet(str(out / "hazard_counts"))
    located = hz.where(F.col("lon").isNotNull() & F.col("lat").isNotNull())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark's pandas-3 notice; no pandas here
        cells = located.select("district", "month", "category", "severity", "lon", "lat").mapInArrow(
            add_cells, CELL_SCHEMA)
    exploded = cells.select(
        "district", "month", "category", "severity",
        F.explode(F.array(*(F.struct(F.lit(r).alias("res"), F.col(f"c{r}").alias("cell"))
                            for r in CELL_RESOLUTIONS))).alias("rc"))
    per_cell = exploded.groupBy("rc.res", "rc.cell", "district", "month", "category", "severity").agg(
        F.count(F.lit(1)).alias("hazards"))
    per_cell.write.mode("overwrite").partitionBy("res").parquet(str(out / "hazard_cells"))
    read = spark.read.parquet
    return {"hazard_counts": read(str(out / "hazard_counts")).count(),
            "hazard_cells": read(str(out / "hazard_cells")).count()}


def district_figures(spark: Any, data: Path, out: Path, codes: list[str], as_of: datetime,
                     settings: Settings) -> dict[str, int]:
    """Run ``district_task`` one district per Spark task; write each figure as Parquet."""
    data_s = str(data)
    rdd = spark.sparkContext.parallelize(codes, max(1, len(codes)))
    results = rdd.map(lambda code: district_task(data_s, code, as_of, settings)).collect()
    rows: dict[str, int] = {}
    for name in FIGURES:
        tables = [from_ipc(r[name]) for r in results]
        table = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target / "part-0.parquet")
        rows[name] = table.num_rows
    return rows


def rank_districts(out: Path, manifest: Any) -> int:
    """``district_rank``: districts by scorecard score (rank 1 best; equal scores share a rank)."""
    frame = pq.read_table(out / "scorecard_district").to_pandas()
    frame = frame.merge(manifest[["district", "name"]], on="district", how="left")
    frame["rank"] = frame["score"].rank(ascending=False, method="min").astype("Int64")
    frame = frame.sort_values(["rank", "district"], na_position="last", ignore_index=True)
    target = out / "district_rank"
    target.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), target / "part-0.parquet")
    return len(frame)


def run(data: str | Path, out: str | Path, master: str = "local[*]", as_of: datetime | None = None,
        settings: Settings | None = None, spark: Any = None,
        districts: list[str] | None = None) -> dict[str, Any]:
    """The whole job: counts, per-district figures, ranking; returns row counts and seconds."""
    settings = settings or Settings()
    data, out = Path(data).resolve(), Path(out).resolve()
    manifest = partition.districts(data)
    codes = list(manifest["district"]) if districts is None else [partition.check_adcode(d) for d in districts]
    unknown = sorted(set(codes) - set(manifest["district"]))
    if unknown:
        raise ValidationError(f"districts {unknown} are not in {data}; it has {list(manifest['district'])}")
    as_of = as_of or datetime.now().replace(microsecond=0)
    out.mkdir(parents=True, exist_ok=True)
    own = spark is None
    spark = spark or spark_session(master)
    t0 = time.perf_counter()
    try:
        rows = count_hazards(spark, data, out)
        t1 = time.perf_counter()
        rows |= district_figures(spark, data, out, codes, as_of, settings)
        rows["district_rank"] = rank_districts(out, manifest)
        t2 = time.perf_counter()
    finally:
        if own:
            spark.stop()
    meta = pa.table({"as_of": [as_of], "districts": [len(codes)], "master": [master],
                     "finished_at": [datetime.now().replace(microsecond=0)]})
    pq.write_table(meta, out / "_job.parquet")
    return {"rows": rows, "counts_s": round(t1 - t0, 2), "districts_s": round(t2 - t1, 2),
            "as_of": as_of}
