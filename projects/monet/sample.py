"""Greedy continuation of a prompt by a trained Monet checkpoint.

  python -m projects.monet.sample --workdir /tmp/monet_demo --prompt 'def __init__(self'
  # the same through the shared CLI:
  python projects/monet/main.py --mode=sample --config ... --workdir /tmp/monet_demo \
      --prompt 'def __init__(self' --temperature=0

Reads the config saved beside the checkpoint, restores the state onto the devices present and
decodes greedily with the KV cache (MonetTask.sample -> projects/monet/generate.py).
"""
from __future__ import annotations

import argparse


def sample(workdir: str, prompt: str, *, max_new_tokens: int = 64, step: int | None = None) -> str:
  """The prompt followed by `max_new_tokens` greedily decoded tokens, as text."""
  from common.train import sample as sample_lib  # pylint: disable=g-import-not-at-top
  return sample_lib.sample(None, workdir, prompt, num_tokens=max_new_tokens, temperature=0.0,
                           step=step)


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
