"""Chess board-state coverage and reconstruction of a Monet layer's expert hidden code (MoE-X Tab. 1).

  python -m projects.monet.interpret.board --workdir /tmp/monet_chess_hd [--layer 2]

The features ("MLP hidden units") are what the layer's down projections read: the
routing-weighted expert hidden activations over all experts, `experts.hidden_code` (defined and
derived there; the layer's output is linear in it: `experts.down_projection`, `output_bias`).
HD has E * m features, VD 2 * E * m.

Protocol, as projects/moex/board_eval.py (both score through common.eval.board_state.score_games):
layer -1 = num_layers // 2 (layer 2 of the 4-layer demo); the first 160 games of the config's
evaluation split, each cut to config.data.seq_len characters; the first half fits the
reconstruction's feature labels, the second half is scored for both metrics; batches of 16.
The model must be in eval mode (router BatchNorm running statistics), so a token's code does not
depend on the other games of its batch.
"""
from __future__ import annotations

import argparse
import json
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.eval import board_state
from projects.monet.experts import down_projection, hidden_code, output_bias  # noqa: F401
from projects.monet.model import MonetForCausalLM

NUM_GAMES = 160   # projects/moex/configs/chess.py: c.eval.board_games (demo)
BATCH_SIZE = 16   # ... c.eval.board_batch_size


def resolve_layer(layer: int, num_layers: int) -> int:
  """-1 -> the middle layer num_layers // 2, as MoE-X's board_layer."""
  if layer == -1:
    return num_layers // 2
  if not 0 <= layer < num_layers:
    raise ValueError(f"layer={layer}: allowed -1 (the middle layer) or 0..{num_layers - 1}.")
  return layer


def num_features(model: MonetForCausalLM) -> int:
  cfg = model.config
  return cfg.moe_experts * cfg.moe_dim * (2 if cfg.moe_decompose == "vertical" else 1)


def layer_terms(model: MonetForCausalLM, ids: jax.Array, layer: int
                ) -> tuple[jax.Array, jax.Array, jax.Array, tuple[jax.Array, jax.Array]]:
  """(code, moe output, layer output h, (g1, g2)) of decoder layer `layer` on ids (B, T).

  Runs the decoder only up to `layer` and repeats MonetDecoderLayer's body there, because the
  code is an intermediate of the experts' forward; tests/projects/monet/test_board.py checks
  that h equals the full model's hidden state, so a change to the layer cannot go unnoticed.
  """
  b, t = ids.shape
  positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  h = jnp.take(model.embed_tokens[...], ids, axis=0).astype(model.config.dtype)
  probs = None
  for block in model.layers[:layer]:
    h, probs, _ = block(h, positions, probs)
  block = model.layers[layer]
  h = h + block.attn(block.input_layernorm(h), positions)[0].astype(h.dtype)
  u = block.post_attention_layernorm(h)
  probs = block.router(u) if block.router is not None else probs
  out = block.moe(u, *probs)
  return hidden_code(block.moe, u, *probs), out, h + out.astype(h.dtype), probs


def hidden_fn(model: MonetForCausalLM, layer: int) -> Callable[[np.ndarray], np.ndarray]:
  """tokens int32 [B, T] -> float32 code [B, T, F] of `layer` (F = num_features), jitted."""
  layer = resolve_layer(layer, model.config.num_hidden_layers)
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, tokens):
    return layer_terms(nnx.merge(graphdef, state), tokens, layer)[0].astype(jnp.float32)

  return lambda tokens: np.asarray(run(state, jnp.asarray(tokens, jnp.int32)))


load_games = board_state.load_games


def _restore(workdir: str, step: int | None):
  from common.train import checkpoint, trainer  # pylint: disable=g-import-not-at-top
  step, config = checkpoint.read_config(workdir, step)
  # Any saved mesh becomes plain data parallelism over whatever devices are here.
  config.mesh.shape = {"data": -1, **{k: 1 for k in config.mesh.shape if k != "data"}}
  run, state, _ = trainer.restore_for_eval(config, workdir, step=step)
  return run.model(state), config  # called with train=False: routers use running statistics


def evaluate(workdir_or_model, games: list[str] | None = None, layer: int = -1, *,
             seq_len: int | None = None, batch_size: int = BATCH_SIZE, num_games: int = NUM_GAMES,
             step: int | None = None) -> dict[str, float]:
  """{'coverage', 'reconstruction', 'positions', 'features', 'layer'} of one Monet layer.

  Args:
    workdir_or_model: a run directory (its config and newest or `step` checkpoint) or a
      MonetForCausalLM in eval mode.
    games: transcripts; default (workdir only) the first `num_games` of the evaluation split.
    layer: decoder layer, -1 = num_layers // 2.
    seq_len: characters per game; default the workdir config's data.seq_len (needed for a model).
  """
  if isinstance(workdir_or_model, str):
    model, config = _restore(workdir_or_model, step)
    if config.data.get("tokenizer") != "chess":
      raise ValueError(f"{workdir_or_model}: config.data.tokenizer="
                       f"{config.data.get('tokenizer')!r}; board states need a model trained on "
                       "chess transcripts (projects/monet/configs/chess.py).")
    seq_len = seq_len or int(config.data.seq_len)
    if games is None:
      games = load_games(config.data, config.data.eval_split, num_games)
  else:
    model = workdir_or_model
    if games is None or seq_len is None:
      raise ValueError("evaluate(model, ...) needs games= and seq_len=; only a workdir supplies "
                       "them from its config.")
  if not isinstance(model, MonetForCausalLM):
    raise ValueError(f"model={type(model).__name__}: expected a MonetForCausalLM.")
  layer = resolve_layer(layer, model.config.num_hidden_layers)
  scores = board_state.score_games(games, hidden_fn(model, layer), seq_len=seq_len,
                                   batch_size=batch_size)
  return dict(scores, layer=float(layer))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(prog="python -m projects.monet.interpret.board",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="a chess run directory (checkpoints/)")
  parser.add_argument("--layer", type=int, default=-1, help="-1: num_layers // 2")
  parser.add_argument("--num_games", type=int, default=NUM_GAMES)
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
  args = parser.parse_args(argv)
  out = evaluate(args.workdir, layer=args.layer, num_games=args.num_games, step=args.step)
  print(json.dumps(out, indent=1, sort_keys=True))
  return out


if __name__ == "__main__":
  main()
