#!/usr/bin/env bash
# Runs one project's main.py on EVERY worker of a TPU VM pod slice (one process per host).
#
#   scripts/launch_tpu_pod.sh TPU_NAME ZONE PROJECT -- --config projects/P/configs/C.py:ARGS \
#       --workdir /mnt/runs/NAME [--config.train.num_steps=...]
#
# What it does, in order (each a plain gcloud command you can also run by hand):
#   1. copies this repository to ~/sparse_monorepo on all workers (--worker=all);
#   2. on all workers: creates the venv (scripts/setup.sh) and adds jax[tpu] (SETUP=0 skips);
#   3. on all workers at once: starts projects/PROJECT/main.py with the given flags.
# jax.distributed finds the other workers itself on a TPU VM (TPU_WORKER_HOSTNAMES), so no
# coordinator flags are needed. --workdir must be the SAME shared directory on every worker
# (a gcsfuse-mounted bucket or an NFS/Filestore mount): Orbax writes one checkpoint from all
# hosts into it. Rerunning the same command resumes from the newest checkpoint.
set -euo pipefail
if [ $# -lt 4 ] || [ "$4" != "--" ]; then
  echo "usage: $0 TPU_NAME ZONE PROJECT -- MAIN_FLAGS..." >&2
  exit 2
fi
TPU="$1"; ZONE="$2"; PROJECT="$3"; shift 4
REPO="$(cd "$(dirname "$0")/.." && pwd)"
REMOTE_DIR="sparse_monorepo"
GCLOUD_PROJECT_FLAG=${GCLOUD_PROJECT:+--project=$GCLOUD_PROJECT}

# 1. Code to every worker (the .venv and caches stay local).
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" $GCLOUD_PROJECT_FLAG --worker=all \
  --command="mkdir -p ~/$REMOTE_DIR"
tar -C "$REPO" --exclude=.venv --exclude=.git --exclude='__pycache__' -czf /tmp/sparse_monorepo.tgz .
gcloud compute tpus tpu-vm scp /tmp/sparse_monorepo.tgz "$TPU":~/sparse_monorepo.tgz \
  --zone="$ZONE" $GCLOUD_PROJECT_FLAG --worker=all
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" $GCLOUD_PROJECT_FLAG --worker=all \
  --command="tar -C ~/$REMOTE_DIR -xzf ~/sparse_monorepo.tgz"

# 2. Environment (once per slice; SETUP=0 to skip on reruns).
if [ "${SETUP:-1}" = "1" ]; then
  gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" $GCLOUD_PROJECT_FLAG --worker=all \
    --command="cd ~/$REMOTE_DIR && scripts/setup.sh && .venv/bin/pip install -q 'jax[tpu]'"
fi

# 3. Start on all workers at once; each logs to ~/sparse_monorepo/run.log on its host.
printf -v FLAGS '%q ' "$@"
gcloud compute tpus tpu-vm ssh "$TPU" --zone="$ZONE" $GCLOUD_PROJECT_FLAG --worker=all \
  --command="cd ~/$REMOTE_DIR && nohup .venv/bin/python projects/$PROJECT/main.py $FLAGS > run.log 2>&1 &"
echo "started on all workers of $TPU; follow worker 0 with:"
echo "  gcloud compute tpus tpu-vm ssh $TPU --zone=$ZONE --worker=0 --command='tail -f ~/$REMOTE_DIR/run.log'"
