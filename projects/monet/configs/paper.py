r"""Monet pretraining as in the paper (Park et al., ICLR 2025, App. B.1): the Tab. 6 presets.

Command (TPU v4-64 slice = 32 chips, 4 hosts; run on every host):

  python projects/monet/main.py --config projects/monet/configs/paper.py:vd-1.4B \
    --workdir /mnt/runs/monet/vd-1.4B --multihost

Variants: one preset name, {vd,hd}-{850M,1.4B,4.1B}[-groups1] (groups1 = a router in every
layer, the Tab. 8 ablation); optional steps=<int>.

From the paper: 100B tokens of FineWeb-Edu; AdamW, lr 5e-4; batch 2M tokens (1,024 sequences
of 2,048 = max_position_embeddings); so 100B / 2M = 47,684 steps (the spec's "about 50k", an
inference); squared-ReLU experts, a router per 4 layers, aux-loss weight 1e-3 for uniformity and
ambiguity; TPU v4-64. LLaMA tokenizer (SentencePiece, 32,000 pieces).
NOT reported by the paper (our choices, marked so): warm-up 2,000 steps, cosine to 10%, weight
decay 0.1 (not on biases/norms), betas (0.9, 0.95), grad clip 1.0, sequence length 2,048.

Data: 'tfds:huggingface:huggingfacefw__fineweb_edu/sample-100BT' (TFDS's Hugging Face namespace;
only a 'train' split exists, so the last 0.1% is held out for evaluation). It must be prepared
beforehand (the data layer names the `tfds build` command when it is absent). The tokenizer path
`LLAMA_SPM` below must hold LLaMA's tokenizer.model (500 kB; not redistributed here).

Mesh: 32 chips as data 1 x fsdp 8 x expert 4 with projects/monet/sharding.py POD_RULES (experts,
attention heads and vocab split 4-way over 'expert', everything FSDP-sharded 8-way over 'fsdp';
the batch is split over data x fsdp). bfloat16 compute, float32 parameters and router statistics.

Time: not measured (no TPU here). Expected (paper Tab. 2, 0-shot averages over 8 benchmarks):
VD 850M .453, VD 1.4B .478, VD 4.1B .511; HD .446 / .463 / .503. These need the lm-eval-harness
style evaluators, which this repo does not have yet; the trainer reports validation CE/ppl.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import defaults
from projects.monet import config as config_lib
from projects.monet import sharding
from common.train import config_variants as variants

FINEWEB_EDU = "tfds:huggingface:huggingfacefw__fineweb_edu/sample-100BT"
LLAMA_SPM = "~/.cache/sparse_monorepo/tokenizers/llama/tokenizer.model"
TOKENS_PER_BATCH = 2 ** 21  # "2M tokens" [P App. B.1]
SEQ_LEN = 2048
TOTAL_TOKENS = 100_000_000_000
# What tests/projects/test_every_project_imports.py builds (this file needs a preset name).
TEST_ARGS = ("vd-850M", "hd-4.1B-groups1")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  words = [w.strip() for w in (arg or "").split(",") if w.strip()]
  names = [w for w in words if "=" not in w]
  if len(names) != 1 or names[0] not in config_lib.PRESETS:
    raise ValueError(f"config variant {arg!r}: name exactly one preset, one of "
                     f"{sorted(config_lib.PRESETS)} (optionally with steps=<int>).")
  _, values = variants.parse(",".join(w for w in words if "=" in w), groups=(),
                             keys={"steps": int})
  c = defaults.base_config()
  c.project = "monet"
  c.data = text_data_config(FINEWEB_EDU, tokenizer=f"sentencepiece:{LLAMA_SPM}", task_format="lm",
                            seq_len=SEQ_LEN, train_split="train[:99.9%]",
                            eval_split="train[99.9%:]", num_workers=16)
  config_lib.add_fields(c.model, preset=names[0])
  c.model.dtype = "bfloat16"

  c.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 8, "model": 1, "expert": 4})
  c.mesh.rules = sharding.POD_RULES

  steps = values.get("steps", TOTAL_TOKENS // TOKENS_PER_BATCH)
  c.train.update(dict(batch_size=TOKENS_PER_BATCH // SEQ_LEN, num_steps=steps, log_every=100,
                      eval_every=5_000, checkpoint_every=1_000, keep_checkpoints=3,
                      progress_bar=False))
  c.optimizer.update(dict(name="adamw", learning_rate=5e-4, schedule="cosine",
                          warmup_steps=min(2_000, steps // 10), end_lr_fraction=0.1,
                          b1=0.9, b2=0.95, weight_decay=0.1, grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=256, splits=("train[99.9%:]",), max_batches=50))
  c.eval.evaluators = ("loss",)
  return c
