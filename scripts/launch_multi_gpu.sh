#!/usr/bin/env bash
# Runs one project's main.py on the GPUs of this host, or as process PROCESS_ID of a
# multi-host GPU job.
#
# One host (default): ONE process drives every visible GPU; no jax.distributed needed.
#   scripts/launch_multi_gpu.sh PROJECT --config projects/P/configs/C.py:ARGS --workdir DIR
#
# Several hosts: run this on every host with the same COORDINATOR (host 0's address and a free
# port) and NUM_PROCESSES, and each host's own PROCESS_ID (0 .. NUM_PROCESSES-1):
#   COORDINATOR=10.0.0.1:8476 NUM_PROCESSES=2 PROCESS_ID=0 scripts/launch_multi_gpu.sh PROJECT ...
# Under Slurm or Open MPI set MULTIHOST=1 instead: jax.distributed reads the job's environment.
# DIR must be one shared directory (NFS) seen by every host: checkpoints are written by all.
# GPU jax is an extra: `.venv/bin/pip install "jax[cuda12]"` after scripts/setup.sh.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: [COORDINATOR=host:port NUM_PROCESSES=N PROCESS_ID=i] $0 PROJECT MAIN_FLAGS..." >&2
  exit 2
fi
PROJECT="$1"; shift
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
EXTRA=()
if [ -n "${COORDINATOR:-}" ]; then
  : "${NUM_PROCESSES:?set NUM_PROCESSES with COORDINATOR}" "${PROCESS_ID:?set PROCESS_ID with COORDINATOR}"
  EXTRA+=("--coordinator_address=$COORDINATOR" "--num_processes=$NUM_PROCESSES"
          "--process_id=$PROCESS_ID")
elif [ "${MULTIHOST:-0}" = "1" ]; then
  EXTRA+=("--multihost")
fi
# Let XLA take most of GPU memory up front (the default 75 % is often too little for big runs).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
exec "$PY" "projects/$PROJECT/main.py" "${EXTRA[@]}" "$@"
