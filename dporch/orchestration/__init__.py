"""Task orchestration on Dask: configuration, tasks, compute pools, routing, pipelines."""
