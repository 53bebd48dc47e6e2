"""Beyond one process: fits and sweeps on Dask's distributed engine (docs/cluster.md).

* :mod:`core.cluster.engine`: :func:`~core.cluster.engine.connect` -> a
  ``distributed.Client`` on a LocalCluster of this machine's cores or on an
  existing scheduler;
* :mod:`core.cluster.fit`: :func:`~core.cluster.fit.distributed_fit`, an
  RF-HGN fit of a chunked dataset as a map over chunks (normal equations), a
  tree-sum and the local solve; the single-process path (no client) streams
  the chunks in this process;
* :mod:`core.cluster.sweep`: grids / random searches over fit settings and
  systems, each point a task, restartable, results in JSON + CSV.

Only this package imports dask and distributed (an import-linter contract),
and only when a cluster is used (:func:`~core.cluster.engine.connect`, and
``as_completed`` in the paths that run on a client): the single-process paths
(no client) do not import Dask at all.
"""
