"""`python -m common.eval --workdir DIR [--step N]`: evaluate any project's checkpoint.

Needs no project flags: the config saved beside the checkpoint names the project, whose task
supplies the model and evaluators; the state is restored onto whatever devices are present.
"""
from __future__ import annotations

import argparse
import json
import logging


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(prog="python -m common.eval", description=__doc__)
  parser.add_argument("--workdir", required=True, help="a run directory holding checkpoints/")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  parser.add_argument("--max_batches", type=int, default=None,
                      help="evaluate on at most this many batches per split")
  args = parser.parse_args(argv)
  logging.getLogger().setLevel(logging.INFO)
  from common.train import checkpoint, trainer
  step, config = checkpoint.read_config(args.workdir, args.step)
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  if args.max_batches is not None:
    config.eval.max_batches = args.max_batches
  run, state, step = trainer.restore_for_eval(config, args.workdir, step=step)
  results = dict(trainer.evaluate(run, state, step), step=step)
  print(json.dumps(results, indent=1, sort_keys=True))
  return results


if __name__ == "__main__":
  main()
