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

Only this package imports dask and distributed (an import-linter contract);
the modules import them at module level, so importing ``core.cluster`` costs
Dask's import time: the command line imports it only for the commands that use it.
"""
