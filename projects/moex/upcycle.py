"""Up-cycling (paper Tab. 4): a trained dense run -> a step-0 checkpoint of a MoE model.

  python -m projects.moex.upcycle --dense_workdir /tmp/moex/dense \
      --config projects/moex/configs/chess.py:demo,moex --out /tmp/moex/upcycled_init
  python projects/moex/main.py --config projects/moex/configs/chess.py:demo,moex \
      --config.train.init_from=/tmp/moex/upcycled_init --workdir /tmp/moex/moex_up

Everything but the FFNs (embeddings, attention, norms) is copied; each dense MLP becomes the
experts by `common.layers.moe.upcycle` with config.model.upcycle_mode ('auto': copy when the
expert width equals the dense width, else split the hidden units into dense_hidden /
expert_hidden slices) and upcycle_noise. A learned router keeps its fresh initialisation.
The MoE run then starts from the written checkpoint through the trainer's own
`config.train.init_from`, with fresh optimiser state (the paper's recipe is not recovered; this
is a documented guess, spec 2.2.5).
"""
from __future__ import annotations

import argparse

import jax
from flax import nnx

from common.layers import moe
from common.train import checkpoint, config_io, export, trainer
from projects.moex import task as task_lib


def upcycle_model(dense: nnx.Module, target: nnx.Module, *, mode: str = "auto",
                  noise_std: float = 0.0, seed: int = 0) -> nnx.Module:
  """Writes `dense`'s weights into `target` (a MoE GPT of the same trunk) and returns it."""
  if not all(hasattr(b.ffn, "wi") for b in dense.layers):
    raise ValueError("upcycle: the source must be a dense run (config.model.ffn='dense_gelu' or "
                     "'dense_relu').")
  if not all(isinstance(b.ffn, moe.SparseMoE) for b in target.layers):
    raise ValueError("upcycle: the target config must have a MoE FFN (config.model.ffn in "
                     "'switch', 'moex', 'moex_relu_only', 'moex_router_only').")
  src = nnx.to_pure_dict(nnx.state(dense, nnx.Param))
  dst = nnx.to_pure_dict(nnx.state(target, nnx.Param))
  if set(src) != set(dst) or len(src["layers"]) != len(dst["layers"]):
    raise ValueError("upcycle: dense and MoE models differ outside the FFNs (layers, embeddings); "
                     "use the same num_layers / d_model / num_heads / vocab / max_len.")
  keys = jax.random.split(jax.random.key(seed), len(dst["layers"]))
  for name in dst:
    if name != "layers":
      dst[name] = _same_shape(name, src[name], dst[name])
  for i, (s, d) in enumerate(zip(src["layers"].values(), dst["layers"].values())):
    for part in d:
      if part != "ffn":
        d[part] = _same_shape(f"layers.{i}.{part}", s[part], d[part])
    f, g = s["ffn"], d["ffn"]
    experts = moe.upcycle(f["wi"]["kernel"], f["wi"].get("bias"), f["wo"]["kernel"],
                          f["wo"].get("bias"), num_experts=g["w_enc"].shape[0],
                          expert_hidden=g["w_enc"].shape[-1], mode=mode, noise_std=noise_std,
                          key=keys[i] if noise_std else None)
    for k, v in experts.items():
      if (v is None) != (k not in g):
        raise ValueError(f"upcycle: layer {i}: biases must be present in both models or neither.")
      if v is not None:
        g[k] = v.astype(g[k].dtype)
  state = nnx.state(target, nnx.Param)
  nnx.replace_by_pure_dict(state, dst)
  nnx.update(target, state)
  return target


def _same_shape(name, src, dst):
  shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)
  if shapes(src) != shapes(dst):
    raise ValueError(f"upcycle: parameter {name!r} differs between dense and MoE models: "
                     f"{shapes(src)} vs {shapes(dst)}.")
  return src


def upcycle_run(dense_workdir: str, moe_config, out_workdir: str) -> str:
  """Restores the newest checkpoint of `dense_workdir`, up-cycles it into `moe_config`'s model
  and writes it as step 0 of `out_workdir`; returns the checkpoint directory."""
  _, dense_config = checkpoint.read_config(dense_workdir)
  run, state, _ = trainer.restore_for_eval(dense_config, dense_workdir)
  dense = run.model(state)
  target = task_lib.get_task(moe_config).build_model(nnx.Rngs(moe_config.seed))
  m = moe_config.model
  upcycle_model(dense, target, mode=m.upcycle_mode, noise_std=m.upcycle_noise,
                seed=moe_config.seed)
  return export.write_checkpoint(target, moe_config, out_workdir)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--dense_workdir", required=True, help="a finished dense run (ffn=dense_*)")
  p.add_argument("--config", required=True, help="the MoE run's config, FILE.py:VARIANTS")
  p.add_argument("--out", required=True, help="new workdir for the step-0 checkpoint")
  a = p.parse_args(argv)
  print(upcycle_run(a.dense_workdir, config_io.load_config(a.config), a.out))


if __name__ == "__main__":
  main()
