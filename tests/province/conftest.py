"""A two-district province (Songjiang and Pingyang demo districts) exported as partitioned
GeoParquet, and the Spark job's output on it (local[2]), built once for the province tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

SECOND = ("330326", 0.1, 11)  # Pingyang: adcode, demo scale, seed


@pytest.fixture(scope="session")
def second_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data.demo import build_demo

    path = tmp_path_factory.mktemp("pingyang") / "pingyang.duckdb"
    build_demo(path, area=SECOND[0], scale=SECOND[1], seed=SECOND[2])
    return path


@pytest.fixture(scope="session")
def province(demo_db: Path, second_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The dataset, the two district databases by adcode, the job's output and its as_of."""
    from geo import partition, store
    from geo.aggregate import data_as_of
    from geo.province import job

    data = tmp_path_factory.mktemp("province") / "data"
    dbs = {}
    for db in (demo_db, second_db):
        partition.export_partition(db, data)
        dbs[partition.district_of(store.connect(db))[0]] = db
    as_of = max(data_as_of(store.connect(db)) for db in dbs.values()) + timedelta(minutes=1)
    out = data.parent / "out"
    spark = job.spark_session("local[2]", shuffle_partitions=2)
    try:
        result = job.run(data, out, "local[2]", as_of=as_of, spark=spark)
    finally:
        spark.stop()
    return {"data": data, "dbs": dbs, "out": out, "as_of": as_of, "result": result,
            "made_at": datetime.now()}
