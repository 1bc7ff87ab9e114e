r"""A tiny Monet (or its dense baseline) on code, prose and chess: the CPU domain-purging demo.

Command:

  python projects/monet/main.py \
    --config projects/monet/configs/domains_demo.py:demo,seed=1 --workdir /tmp/monet_domains

Variants (comma-separated): demo (default) | tiny (CI smoke run: seconds) | colab (a Colab
GPU, below); vd (default, vertical decomposition) | hd (horizontal) | dense (the baseline of
equal parameters, no routers: MonetConfig.dense_width); experts=<E per sub-router>; seed=<int>;
steps=<int>.

Data: 'text_domains' (common/data/builders/text_domains: ~200 kB each of stdlib Python
sources, the pydoc language-reference prose and Stockfish games), bytes (0 pad, 1 eos,
2..257 bytes; vocab 258), packed LM sequences of 128 bytes, batch 16.
Built on configs/stdlib_demo.py (its optimiser, batch, eval and smoke settings); what differs:
demo: 2 layers, d_model 64, 4 attention heads of 16; Monet experts with E = 32 per sub-router
(1,024 experts), moe_dim 8, 4 routing heads, k = 4, one router for both layers; relu2 experts.
AdamW 2e-3, cosine, 30 warm-up steps, clip 1.0; 300 steps. Uniformity and ambiguity weights
1e-3 each, the paper's (projects/monet/losses.py; stdlib_demo.py uses 0.1).
tiny: stdlib_demo.py's tiny with 1 layer (E = 8, k = 2, sequences of 32, batch 8, 3 steps):
seconds; numbers are meaningless.

colab (colab.ipynb on a Colab GPU; the only size whose data is downloaded): 'text_domains_colab',
the same three domains at ~8 MB each, the prose from Wikitext-103 and the chess from Lichess,
read from config.data.manual_dir (the notebook downloads both there; see
common/data/builders/text_domains); packed sequences of 512 bytes, batch 32. 6 layers, d_model
384, 6 attention heads of 64; Monet-VD with E = 64 per sub-router (4,096 experts per routing
group), moe_dim 16 (1,024 expert units a layer), 4 routing heads, k = 8 (k / E as in demo), a
router per 2 layers; AdamW 1e-3, cosine, 200 warm-up steps, clip 1.0; 3,000 steps (49M bytes,
~2.6 passes over the training split); validation loss every 1,000 steps. Uniformity and
ambiguity weights 1e-3 (the paper's). Monet computes every expert unit densely (experts.py), the
same on any backend. Time: an ESTIMATE, not measured (no GPU here): 9.2M parameters, ~70
MFLOP a byte in training, 3.4e15 FLOPs in all: ~20-40 min on a T4 in float32, under 10 on an
A100; before it, downloading and building the data (one Wikitext-103 parquet file,
lichess_100mb.zip) a few minutes.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import config_variants as variants
from projects.monet.configs import stdlib_demo

TEST_ARGS = ("demo", "tiny,dense", "colab", "colab,dense")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny", "colab"), ("vd", "hd", "dense")),
                                 keys={"steps": int, "seed": int, "experts": int})
  # stdlib_demo.py's recipe (optimiser, eval, tiny smoke settings) on other data, at another size.
  size = next((f for f in ("tiny", "colab") if f in flags), "demo")
  c = stdlib_demo.get_config("tiny" if size == "tiny" else "demo")
  c.seed = values.get("seed", 0)
  if size == "colab":
    c.data = text_data_config("text_domains_colab", tokenizer="bytes", seq_len=512)
  else:
    c.data = text_data_config("text_domains", tokenizer="bytes", seq_len=c.data.seq_len)
  m = c.model
  m.moe_decompose = {"hd": "horizontal", "dense": "dense"}.get(
      next((f for f in ("hd", "dense") if f in flags), ""), "vertical")
  m.unif_weight = m.amb_weight = 1e-3   # the paper's
  if size == "demo":
    m.update(dict(hidden_size=64, num_hidden_layers=2, max_position_embeddings=256))
    c.train.update(dict(num_steps=300, checkpoint_every=300, keep_checkpoints=1))
    c.optimizer.warmup_steps = 30
  elif size == "colab":
    m.update(dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, moe_dim=16,
                  moe_heads=4, moe_experts=64, moe_topk=8, moe_groups=2,
                  max_position_embeddings=512))
    c.train.update(dict(batch_size=32, num_steps=3000, log_every=100, eval_every=1000,
                        checkpoint_every=1000, keep_checkpoints=2))
    c.optimizer.update(dict(learning_rate=1e-3, warmup_steps=200))
  else:
    m.update(dict(num_hidden_layers=1, moe_groups=1))
  m.moe_experts = values.get("experts", m.moe_experts)
  if "steps" in values:
    variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = min(c.train.checkpoint_every, values["steps"])
  return c
