#!/usr/bin/env bash
# The GPU checks of issue 10 in one run, for a session that is lent a machine with an NVIDIA GPU (the
# project's device tool runs a command in a copy of the working tree there; see benchmarks/README.md).
#
#   bash benchmarks/gpu_session.sh            # there: python3 holds a CUDA build of torch
#   PY=.venv/bin/python bash benchmarks/gpu_session.sh   # here: a dry run (the CUDA tests skip, the
#                                                         # GPU section says why it skipped)
#
# 1. the CUDA tests (CPU-GPU agreement of the network, the fit, the stepper, the baselines and the CLI's
#    --device cuda), from the test files that hold them (the others import the GUI stack, which the GPU
#    machine's image does not have);
# 2. benchmarks/bench_torch_core.py --sections gpu --merge: the 1,000,000-particle learned step (<= 20 ms),
#    a 216^3 = 10,077,696-particle roll-out and the fit on 100,000 snapshots, CPU against GPU (>= 10x).
# Logs and the results files go to $OUT (the device tool brings that folder back), else to /tmp/gpu-session.
# About 5-8 minutes on an H200; each step's own timeout keeps the whole inside a 10-minute command.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEST=${OUT:-/tmp/gpu-session}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" 2>&1 | tee "$DEST/gpu_env.txt"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -p no:xvfb -k "cuda or gpu" \
    tests/benchmarks/test_gpu_dry_run.py tests/core/baselines/test_baseline_training.py \
    tests/core/rfhgn/test_rfhgn_fit.py tests/core/test_hgn_cli.py tests/core/test_hgn_network.py \
    tests/core/test_stepper.py 2>&1 | tee "$DEST/gpu_tests.log"
timeout 300 "$PY" benchmarks/bench_torch_core.py --sections gpu --merge 2>&1 | tee "$DEST/gpu_bench.log"
cp benchmarks/results/torch_core.json benchmarks/results/torch_core.md "$DEST/" 2>/dev/null
echo "wrote $DEST"
