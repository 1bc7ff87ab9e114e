r"""Monet's experts in the superposition task, beside MoE-X's FFNs (one table: moex's demo).

  python projects/monet/main.py --config projects/monet/configs/superposition.py:demo,vd \
    --workdir /tmp/monet_toy/vd

The data, optimiser, steps and evaluation are common/tasks/superposition.py's `base_config`,
the same as projects/moex/configs/superposition.py's, so the scores compare: F = 128 features
superposed in d = 32 dimensions, 2,000 steps of batch 512. The FFN: one Monet layer's router
and experts (projects/monet/superposition.py), hidden_size = F.

Variants (comma-separated): size demo (default) | tiny; vd (default, vertical decomposition) |
hd (horizontal); experts=<E per sub-router>; steps=<int>.

demo: E = 32 experts per sub-router (1,024 expert pairs) of moe_dim m = 8, 2 routing heads,
k = 4: E * m = 256 up units in all, as MoE-X's 8 experts of 32, and at most heads * k * m = 64
active per example (up units of the selected experts, and as many down-projection rows), as
the other kinds' active width 64. The scored code (experts.hidden_code) has 256 units for HD
and 512 for VD. Monet's router is larger than MoE-X's (2 sub-routers x F x
heads x E = 16,384 parameters against F x 8 = 1,024). relu2 experts; uniformity and ambiguity
weights 1e-3 each, the paper's (App. B.1), here against a reconstruction MSE of ~2e-3 rather
than an LM loss of a few nats.
tiny: 16 features in 8 dimensions, E = 4 of m = 4, 1 head, k = 2, 3 steps (tests).
"""
import ml_collections

from common.tasks import superposition as toy
from common.train import config_variants as variants
from projects.monet import config as config_lib

TEST_ARGS = ("tiny", "tiny,hd")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny"), ("vd", "hd")),
                                 keys={"steps": int, "experts": int})
  tiny = "tiny" in flags
  c = toy.base_config(tiny=tiny, steps=values.get("steps"))
  c.project = "monet"
  config_lib.add_fields(c.model)
  c.model.update(dict(
      vocab_size=1, hidden_size=c.data.num_features, num_hidden_layers=1, num_attention_heads=1,
      max_position_embeddings=1, moe_groups=1, hidden_act="relu2",
      moe_decompose="horizontal" if "hd" in flags else "vertical",
      moe_experts=values.get("experts", 4 if tiny else 32), moe_dim=4 if tiny else 8,
      moe_heads=1 if tiny else 2, moe_topk=2 if tiny else 4, unif_weight=1e-3, amb_weight=1e-3))
  return c
