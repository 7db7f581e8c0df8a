"""Collections beyond one machine: embedding on Apache Spark, in clip-retrieval's layout.

`shards` (no Spark needed: the layout, the plan, one shard's work, reading shards back) and
`job` (the Spark driver). `clipsearch import` (clipsearch.ingest.importer) brings the shards
into a library without any model work.
"""
