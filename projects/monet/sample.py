"""Greedy continuation of a prompt by a trained Monet checkpoint.

  python -m projects.monet.sample --workdir /tmp/monet_demo --prompt 'def __init__(self'

Reads the config saved beside the checkpoint (as `python -m common.eval` does), restores the
state onto the devices present (trainer.restore_for_eval), tokenizes the prompt with the
config's tokenizer and decodes greedily with the KV cache (projects/monet/generate.py).
"""
from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np


def sample(workdir: str, prompt: str, *, max_new_tokens: int = 64, step: int | None = None) -> str:
  """The prompt followed by `max_new_tokens` greedily decoded tokens, as text."""
  from common.data import tokenizers  # pylint: disable=g-import-not-at-top
  from common.train import checkpoint, trainer  # pylint: disable=g-import-not-at-top
  from projects.monet import generate  # pylint: disable=g-import-not-at-top
  if not prompt:
    raise ValueError("--prompt='': give at least one character to continue.")
  step, config = checkpoint.read_config(workdir, step)
  # Any saved mesh becomes plain data parallelism over whatever devices are here.
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, step = trainer.restore_for_eval(config, workdir, step=step)
  model = run.model(state)  # eval mode: routers use their running statistics
  tok = tokenizers.from_config(config.data)
  ids = np.asarray(tok.encode(prompt), np.int32)[None]
  limit = model.config.max_position_embeddings
  if ids.shape[1] + max_new_tokens > limit:
    raise ValueError(f"--prompt of {ids.shape[1]} tokens + --max_new_tokens={max_new_tokens} "
                     f"exceeds the model's max_position_embeddings={limit}.")
  out = generate.greedy_generate(model, jnp.asarray(ids), max_new_tokens)
  return tok.decode(np.asarray(out[0]).tolist())


def main(argv=None) -> str:
  parser = argparse.ArgumentParser(prog="python -m projects.monet.sample", description=__doc__)
  parser.add_argument("--workdir", required=True, help="a run directory holding checkpoints/")
  parser.add_argument("--prompt", required=True, help="text to continue")
  parser.add_argument("--max_new_tokens", type=int, default=64)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  args = parser.parse_args(argv)
  text = sample(args.workdir, args.prompt, max_new_tokens=args.max_new_tokens, step=args.step)
  print(text)
  return text


if __name__ == "__main__":
  main()
