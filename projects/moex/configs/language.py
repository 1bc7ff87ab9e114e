r"""MoE-X language models (paper Tab. 2): GPT-2 Small / Medium trunks with 8 experts top-2.

Command (TPU/GPU; the data must be prepared as TFDS array_record, see common/data/config.py):

  python projects/moex/main.py --config projects/moex/configs/language.py:small,moex \
    --workdir /mnt/runs/moex_s    # one directory shared by every host (README, Multi-host)
  python -m common.eval --workdir /mnt/runs/moex_s    # perplexity on the held-out split

Variants: size small (default; 12 layers, 12 heads, d 768) | medium (24 / 16 / 1024); FFN kind
moex (default) | switch | dense_gelu | dense_relu | dense_geglu | dense_solu | dense_relu2 |
moex_relu_only | moex_router_only; data fineweb (default) | openwebtext; tokenizer tok=gpt2
(default; with bpe=<folder>) | tok=sp; manual=<folder> (config.data.manual_dir: files TFDS
reads instead of downloading); steps=<int>.

Settings (spec 2.3): 8 experts, top-2; AdamW 3e-4 -> 3e-5 cosine, warm-up 5000, clip 1.0,
dropout 0, batch 320 x 1024 tokens, 100k steps. Guesses: expert width = dense width / 2 (equal
active parameters: 2 x 1536 for Small, 2 x 2048 for Medium; the paper does not report it); MoE in
every layer; weight decay 0.1 (GPT-2 / nanoGPT); bfloat16 compute. Data: the paper trains on
FineWeb, a 10BT subset (secondary source, spec 2.3): `fineweb` reads
'tfds:huggingface:huggingfacefw__fineweb/sample-10BT' (TFDS's Hugging Face namespace, as Monet's
FineWeb-Edu config; only a 'train' split exists, so the last 0.1% is held out for perplexity);
prepare it beforehand (the data layer names the `tfds build` command when it is absent, and
reads `manual=<folder>` as config.data.manual_dir). `openwebtext` reads 'tfds:openwebtext' (last
1% held out), the corpus of the paper's OpenWebText perplexity column. Hardware: not run here
(a v4-32 or 8 A100s is the right class). Expected (Tab. 2, OpenWebText ppl): GPT-2 S 22.83, Switch-S 18.36, MoE-X-S
19.42; GPT-2 M 17.19, Switch-M 15.43, MoE-X-M 14.78.

Tokenizer: the paper uses GPT-2's BPE (50,257 tokens): bpe=<folder> with GPT-2's tokenizer files
(tokenizer.json, or vocab.json + merges.txt from the HF 'gpt2' repository) reads it through
common.data.tokenizers 'bpe:<folder>'. Without those files, tok=sp trains a 50,257-piece
SentencePiece model on the training split instead (perplexities are then NOT comparable with the
paper's).
"""
import ml_collections

from common.data.config import text_data_config
from common.train import config_variants as variants
from common.train import defaults
from projects.moex import config as config_lib

TEST_ARGS = ("small,tok=sp", "medium,switch,tok=sp", "small,openwebtext,tok=sp",
             "small,tok=sp,manual=/data/fineweb")
FINEWEB = "tfds:huggingface:huggingfacefw__fineweb/sample-10BT"
PRESETS = {"small": "MoE-X-S", "medium": "MoE-X-M"}   # projects/moex/config.py
GPT2_VOCAB = 50257


def tokenizer_spec(values: dict) -> str:
  """'bpe:<folder>' (GPT-2's own BPE, the paper's) or, with tok=sp, a local SentencePiece model."""
  tok, folder = values.get("tok", "gpt2"), values.get("bpe", "")
  if tok == "sp":
    return f"sentencepiece:{GPT2_VOCAB}"
  if tok != "gpt2":
    raise ValueError(f"config variant tok={tok!r}; allowed: gpt2, sp.")
  if not folder:
    raise ValueError("tok=gpt2 needs bpe=<folder with GPT-2's tokenizer.json or vocab.json + "
                     "merges.txt> (e.g. the HF 'gpt2' repository downloaded); or use tok=sp for a "
                     "50,257-piece SentencePiece model trained on the data (perplexities then "
                     "differ from the paper's).")
  return f"bpe:{folder}"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("small", "medium"),
                                              ("moex",) + tuple(k for k in config_lib.KINDS
                                                                if k != "moex"),
                                              ("fineweb", "openwebtext")),
                                 keys={"steps": int, "tok": str, "bpe": str, "manual": str})
  c = defaults.base_config()
  c.project = "moex"
  m = c.model
  size = "medium" if "medium" in flags else "small"
  config_lib.set_fields(m, PRESETS[size], ffn=next(k for k in config_lib.KINDS if k in flags))
  m.dtype = "bfloat16"
  if "openwebtext" in flags:
    name, train, held_out = "tfds:openwebtext", "train[:99%]", "train[99%:]"
  else:
    name, train, held_out = FINEWEB, "train[:99.9%]", "train[99.9%:]"
  c.data = text_data_config(name, tokenizer=tokenizer_spec(values), seq_len=1024,
                            train_split=train, eval_split=held_out,
                            manual_dir=values.get("manual", ""))
  c.train.update(dict(batch_size=320, num_steps=100_000, log_every=100, eval_every=10_000,
                      checkpoint_every=2_000, keep_checkpoints=3))
  c.optimizer.update(dict(name="adamw", learning_rate=3e-4, schedule="cosine",
                          warmup_steps=5000, end_lr_fraction=0.1, weight_decay=0.1, b2=0.95,
                          grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=64, splits=(held_out,), max_batches=200))
  c.eval.evaluators = ("loss",)
  if "steps" in values:
    variants.set_steps(c, values["steps"])
  return c
