"""The benchmark suite: RF-HGN against gradient-trained baselines, measured
in one run on one machine.

    .venv/bin/python -m benchmarks.suite                 # all five tables (about 25 min on 2 cores)
    .venv/bin/python -m benchmarks.suite --short         # CI mode, under 2 minutes
    .venv/bin/python -m benchmarks.suite --only optimizers,zero_shot

Tables (one module each): ``optimizers`` (RF-HGN and the 15 gradient
optimizers on the 3x3x3 lattice), ``potentials`` (harmonic, anharmonic,
Morse: Adam, ELM, SWIM), ``zero_shot`` (fitted small, rolled out up to
16^3 and 100 x 100, and the 2x2 failure case), ``scaling`` (fit time against
snapshots, particles and width; rollout step time up to ~100,000 particles;
peak memory), ``molecular`` (Lennard-Jones fluid with cutoff edges).

Outputs in the output folder (default ``benchmarks/results``; with
``--short`` ``benchmarks/results/short``): ``suite_<table>.json`` (every
number, the settings and the machine), ``suite_<table>.png`` (figures),
``suite.md`` (the report of every table present in the folder; running one
table updates its section and keeps the others).
"""
