r"""SEA distillation of OPT-125m / OPT-1.3B on Wikitext-2: the official recipe (scripts/opt.py).

Commands (GPU/TPU host; HF checkpoint folders with config.json, model.safetensors, vocab.json,
merges.txt; wikitext-2-raw-v1 unzipped in WIKI):

  python -m projects.sea.convert --hf /data/opt-125m-wikitext2 \
    --config projects/sea/configs/opt.py:opt-125m,hf=/data/opt-125m-wikitext2,wiki=$WIKI \
    --to_checkpoint /ckpt/sea125m_init
  python projects/sea/main.py \
    --config projects/sea/configs/opt.py:opt-125m,hf=/data/opt-125m-wikitext2,wiki=$WIKI \
    --config.train.init_from=/ckpt/sea125m_init --workdir /ckpt/sea125m

Variants: opt-125m (default) | opt-1.3b; official (default) | colab; hf=<checkpoint dir>
(tokenizer files); wiki=<dir with wiki.{train,test}.raw>; steps=<int>. Teachers (official):
Aalaa/opt-125m-wikitext2, lnair/opt-1.3b-wikitext2 (OPT fine-tuned on Wikitext-2).

colab (opt-125m only; what colab.ipynb runs on a Colab GPU/TPU runtime): the same recipe shortened
to fit about an hour. The notebook downloads COLAB_HF_REPO (facebook/opt-125m, not the official
fine-tuned teacher) and COLAB_WIKITEXT (Wikitext-2 raw from the HF hub), converts the weights to
step 0 (convert.py's path, export_opt.export_checkpoint) and passes their folders as hf= and
wiki=. Changes: batch 8 (4 micro-batches of 2 rows), 1,000 steps, base lr 1e-4 (SEA params x10,
the rest x0.2; a choice: the official 1e-5 is for 10k steps of batch 32), checkpoints every 250,
strided evaluation at the end only (batch 8). Time: NOT measured (no accelerator here); estimated
~1-3 s/step on an A100, an L4 or a TPU v5e (~20-50 min), plus ~5 min of download, conversion
and evaluation; a T4 has no bfloat16 and is several times slower (pass steps=200).

Official hyper-parameters (spec §2.4): SEA on every layer, k 64, T_M 256, nbf 8; context 2048;
10,000 steps; global batch 32 (125m) / 36 (1.3b); AdamW base lr 1e-5 with 'perlin' (= our
'.../sea/...') params x10 and the rest x0.2 (config.optimizer.lr_multipliers);
weight decay 1e-2 (our mask: no decay on biases and LN scales; official decays LN weights, whose
OPT names escape its 'LayerNorm' filter), grad clip 1.0, constant lr; fp16 -> bfloat16 here.
Evaluation: strided Wikitext-2 test perplexity, stride = max_length = 2048, every 150 steps (125m)
or 100 (1.3b). Hardware: 1 GPU of 40+ GB (125m) / 8 GPUs or a TPU v4-8 (1.3b); time not measured.
Expected (repo draft table, spec §2.5): OPT-125m 25.16 dense -> SEA 25.88; OPT-1.3B 13.29 dense.
"""
import ml_collections

from common.train import config_variants, defaults
from projects.sea import config as sea_config

TEST_ARGS = ("opt-125m", "opt-125m,colab")
# What the colab variant's run downloads (colab.ipynb, only in its 'colab' setting).
COLAB_HF_REPO = "facebook/opt-125m"
COLAB_WIKITEXT = ("Salesforce/wikitext", "wikitext-2-raw-v1")  # HF hub dataset repo, its config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(arg, groups=(("opt-125m", "opt-1.3b"),
                                                     ("official", "colab")),
                                        keys={"hf": str, "wiki": str, "steps": int})
  size = "opt-1.3b" if "opt-1.3b" in flags else "opt-125m"
  if "colab" in flags and size != "opt-125m":
    raise ValueError("config variant 'colab' is opt-125m only (one Colab GPU, about an hour).")
  hf, wiki = values.get("hf", ""), values.get("wiki", "")
  c = defaults.base_config()
  c.project = "sea"
  # name '' keeps common.data out: the OPT BPE stream is read by projects/sea/wikitext.py.
  c.data = ml_collections.ConfigDict(dict(name="", source="wikitext2", manual_dir=wiki,
                                          tokenizer_dir=hf, seq_len=2048))
  m = c.model
  m.update(sea_config.model_fields())
  sea_config.set_preset(m, size)
  m.update(dict(mode="distill", sea_layers="all", sea_k=64, sea_predictor_length=256,
                sea_nb_factor=8, dtype="bfloat16",
                remat_policy="dots_with_no_batch_dims_saveable"))
  big = size == "opt-1.3b"
  # Official micro-batch is 1 per GPU (DeepSpeed accumulates to 32 / 36): the teacher's [T, T]
  # scores of every layer are alive at once. 8 / 9 micro-batches of 4 rows here; with fewer
  # devices than 4 raise --config.train.grad_accum_steps so one device holds one row.
  c.train.update(dict(batch_size=36 if big else 32, grad_accum_steps=9 if big else 8,
                      num_steps=10_000, log_every=10, eval_every=100 if big else 150,
                      checkpoint_every=500, progress_bar=False))
  if big:  # 36 rows split over 4 data shards (e.g. 4 hosts x 2 fsdp, or set mesh.shape)
    c.mesh.shape = ml_collections.ConfigDict({"data": 4, "fsdp": -1, "model": 1, "expert": 1})
  c.optimizer.update(dict(name="adamw", learning_rate=1e-5, schedule="constant", warmup_steps=0,
                          weight_decay=1e-2, weight_decay_mask="no_bias_norm",
                          grad_clip_norm=1.0, lr_multipliers=sea_config.SEA_LR_GROUPS))
  c.eval.update(dict(batch_size=8, splits=()))
  c.eval.evaluators = ("strided",)
  c.eval.strided = sea_config.strided_eval("wikitext2", "wikitext2", max_length=2048,
                                              stride=2048, manual_dir=wiki, tokenizer_dir=hf)
  if "colab" in flags:
    c.train.update(dict(batch_size=8, grad_accum_steps=4, num_steps=1000, eval_every=0,
                        checkpoint_every=250, keep_checkpoints=1))
    c.optimizer.learning_rate = 1e-4
    c.eval.strided.batch_size = 8
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
  return c
