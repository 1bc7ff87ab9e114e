"""The PyTorch side of benchmarks/vision.py: the official SViT and BiFormer code, and a plain
torch ViT-B/16, served for interleaved timing (benchmarks.harness.Served). Imports only torch,
einops and benchmarks.harness, so it runs in a torch-only venv (recipe: benchmarks/vision.py).

The official files import timm, fvcore, scipy and fairscale at module level but use only
DropPath, to_2tuple, trunc_normal_ and registry decorators from them (../shared/specs/vision.md
§3). timm 1.x imports torchvision, whose PyPI wheel does not load beside the CPU torch build, so
those names are provided here instead of installing the packages.
"""
from __future__ import annotations

import argparse
import sys
import types

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks import harness

# Official model builders by our preset name: (source folder key, module, builder).
OFFICIAL = {"SViT-S": ("svit", "models.stvit", "stvit_small"),
            "BiFormer-T": ("biformer", "models.biformer", "biformer_tiny")}


class _DropPath(nn.Module):
  """Stochastic depth per sample (what timm's DropPath does)."""

  def __init__(self, drop_prob: float = 0.0):
    super().__init__()
    self.drop_prob = drop_prob

  def forward(self, x):
    if self.drop_prob == 0.0 or not self.training:
      return x
    keep = 1.0 - self.drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def _install_import_shims() -> None:
  """Modules the official files import but do not need, as minimal stand-ins."""
  def module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m

  identity = lambda fn=None, *a, **k: fn  # noqa: E731  (register_model, checkpoint_wrapper)
  layers = dict(DropPath=_DropPath, to_2tuple=lambda x: x if isinstance(x, tuple) else (x, x),
                trunc_normal_=nn.init.trunc_normal_)
  module("timm", models=module("timm.models", register_model=identity,
                               layers=module("timm.models.layers", **layers),
                               registry=module("timm.models.registry", register_model=identity),
                               vision_transformer=module("timm.models.vision_transformer",
                                                         _cfg=lambda **k: dict(k))))
  module("fvcore", nn=module("fvcore.nn", FlopCountAnalysis=None, flop_count_table=None))
  module("scipy", io=module("scipy.io"))
  module("fairscale", nn=module("fairscale.nn", checkpoint=module(
      "fairscale.nn.checkpoint", checkpoint_wrapper=identity)))


class PlainViT(nn.Module):
  """ViT-B/16 as the lazy_neuron preset: pre-norm blocks, ReLU MLP, class token, learned
  positions, no dropout; torch's own encoder layer (its attention uses SDPA)."""

  def __init__(self, size=224, patch=16, width=768, depth=12, heads=12, mlp=3072, classes=1000):
    super().__init__()
    self.embed = nn.Conv2d(3, width, patch, patch)
    self.cls = nn.Parameter(torch.zeros(1, 1, width))
    # Positions for the patches only, added before the class token joins (as our ViT does).
    self.pos = nn.Parameter(torch.randn(1, (size // patch) ** 2, width) * 0.02)
    layer = nn.TransformerEncoderLayer(width, heads, mlp, dropout=0.0, activation="relu",
                                       batch_first=True, norm_first=True, layer_norm_eps=1e-6)
    self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
    self.norm = nn.LayerNorm(width, eps=1e-6)
    self.head = nn.Linear(width, classes)

  def forward(self, x):
    x = self.embed(x).flatten(2).transpose(1, 2)
    x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x + self.pos], 1)
    return self.head(self.norm(self.blocks(x))[:, 0])


def build(name: str, sources: dict):
  if name == "ViT-B/16":
    return PlainViT()
  key, module_name, builder = OFFICIAL[name]
  if not sources.get(key):
    raise RuntimeError(f"no official source folder for {name}: pass --official {key}=DIR")
  _install_import_shims()
  sys.path.insert(0, sources[key])
  module = __import__(module_name, fromlist=[builder])
  if name.startswith("SViT"):
    return getattr(module, builder)(argparse.Namespace(drop=0.0, drop_path=0.0))
  return getattr(module, builder)(drop_path_rate=0.0)


def setup(cfg: dict):
  torch.set_num_threads(cfg["threads"])
  torch.manual_seed(0)
  gpu = cfg.get("backend") == "gpu"
  device = torch.device("cuda" if gpu else "cpu")
  if gpu:
    # XLA computes float32 matmuls and convolutions as TF32 on a GPU by default: the same here.
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True      # as the official main.py files set it
  # Each timed call returns only when its work is done (harness.Served's contract).
  done = torch.cuda.synchronize if gpu else (lambda: None)
  autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                            enabled=cfg.get("dtype") == "bfloat16")
  model = build(cfg["model"], cfg["sources"]).to(device)
  b, size = cfg["batch"], cfg["size"]
  x = torch.randn(b, 3, size, size, device=device)
  y = torch.randint(0, 1000, (b,), device=device)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

  def forward():
    model.eval()
    with torch.inference_mode(), autocast:
      model(x)
    done()

  def train_step():
    model.train()
    opt.zero_grad(set_to_none=True)
    with autocast:
      loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    done()

  a = torch.randn(2048, 2048, device=device)

  def matmul():
    a @ a
    done()

  calls = dict(forward=forward, train_step=train_step, matmul=matmul)
  where = torch.cuda.get_device_name() if gpu else f"{torch.get_num_threads()} threads"
  info = dict(params=sum(p.numel() for p in model.parameters() if p.requires_grad),
              version=f"torch {torch.__version__}, {where}")
  return info, {m: calls[m] for m in cfg["modes"]}


if __name__ == "__main__":
  if "--serve" not in sys.argv:
    sys.exit("vision_torch.py is a worker of benchmarks/vision.py; run that instead.")
  harness.serve(setup)
