"""The province view (issue 17): figures of many districts from a partitioned GeoParquet dataset.

``figures`` holds the per-district work (pure: a district's partition restored into a DuckDB
file and the embedded ``geo/`` functions run on it, so the figures equal the district's own);
``job`` is the Apache Spark job that runs it one district per task and counts the hazards by
district, town and H3 cell across the province.
"""
