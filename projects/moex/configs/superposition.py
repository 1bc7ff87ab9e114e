r"""MoE-X's claim on a task whose true features are known: sparse features in superposition.

  python projects/moex/main.py --config projects/moex/configs/superposition.py:demo,moex \
    --workdir /tmp/moex_toy/moex

Data, task, evaluator and the shared fields: common/tasks/superposition.py (`base_config`);
the FFN: projects/moex/superposition.py. F = 128 features, each on with probability 0.03 (~4
per example), superposed in d = 32 input dimensions; one FFN with d_model = F maps them back.
The FFN's hidden units are scored against the truth ('features' evaluator: coverage, per-unit
F1, L0).

Variants (comma-separated): size demo (default) | tiny; FFN kind moex (default) | any of
projects/moex/config.py's KINDS; hidden=<int> the active hidden width (default 64): dense kinds
get H = hidden (GEGLU 2/3 of it, since its gate adds a third matrix: equal active parameters),
MoE kinds top_k experts of hidden / top_k units; experts=<int> (default 8) and top_k=<int>
(default 2) for MoE kinds; steps=<int>.

demo: batch 512, AdamW 3e-3 (cosine to 10%, warm-up 100), 2,000 steps, 8,192 evaluation
examples. tiny: 16 features in 8 dimensions, hidden 8, 4 experts, 3 steps (tests).
projects/monet/configs/superposition.py puts Monet's experts in the same task.
The paper has no such experiment (its coverage is on chess, Tab. 1); expected from its claim:
MoE-X's units cover more features and are more monosemantic than the dense kinds', and coverage
grows with the hidden-size multiplier (Fig. 3) and falls with L0 (Fig. 4).
"""
import ml_collections

from common.tasks import superposition as toy
from common.train import config_variants as variants
from projects.moex import config as config_lib

TEST_ARGS = ("tiny", "tiny,dense_geglu", "demo,switch,experts=16", "tiny,dense_solu,hidden=12")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny"),
                                              ("moex",) + tuple(k for k in config_lib.KINDS
                                                                if k != "moex")),
                                 keys={"steps": int, "hidden": int, "experts": int, "top_k": int})
  kind = next(k for k in config_lib.KINDS if k in flags)
  tiny = "tiny" in flags
  hidden = values.get("hidden", 8 if tiny else 64)
  experts = values.get("experts", 4 if tiny else 8)
  top_k = values.get("top_k", 2)
  if hidden % top_k:
    raise ValueError(f"hidden={hidden} must be divisible by top_k={top_k} (each of the top_k "
                     "experts holds hidden / top_k units: equal active parameters).")

  c = toy.base_config(tiny=tiny, steps=values.get("steps"))
  c.project = "moex"
  config_lib.set_fields(
      c.model, "MoE-X chess", ffn=kind, num_layers=1, num_heads=1,
      d_model=c.data.num_features, max_len=1, vocab_size=1,
      dense_hidden=hidden * 2 // 3 if config_lib.DENSE.get(kind) == "geglu" else hidden,
      num_experts=experts, top_k=top_k, expert_hidden=hidden // top_k,
      dispatch="dropless")   # equal to dense dispatch in values; 1.2-1.8x faster steps here
  return c
