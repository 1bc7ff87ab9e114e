r"""MoE-X on chess-GPT transcripts (';1.e4 e5 2.Nf3 ...', 32 characters): paper Tab. 1, 3, 4.

Commands:

  python projects/moex/main.py --config projects/moex/configs/chess.py:demo,dense_gelu \
    --workdir /tmp/moex/dense
  python projects/moex/main.py --config projects/moex/configs/chess.py:demo,moex \
    --workdir /tmp/moex/moex
  # up-cycled MoE-X (Tab. 4): map the dense run's MLPs into experts, then train from there
  python -m projects.moex.upcycle --dense_workdir /tmp/moex/dense \
    --config projects/moex/configs/chess.py:demo,moex --out /tmp/moex/upcycled_init
  python projects/moex/main.py --config projects/moex/configs/chess.py:demo,moex \
    --config.train.init_from=/tmp/moex/upcycled_init --workdir /tmp/moex/moex_up

Variants (comma-separated): size demo (default) | long | tiny | colab | paper; FFN kind moex
(default) | dense_gelu | dense_relu | switch | moex_relu_only | moex_router_only
(projects/moex/config.py; Tab. 3: switch = neither, moex_router_only = sparsity router only,
moex_relu_only = ReLU only, moex = both); data chess (default, 'chess_games' with the 'chess'
tokenizer) | stdlib (the Python stdlib as bytes: a fallback for machines without python-chess);
steps=<int>.

paper (Tab. 6/7 as far as recovered, spec 2.3): 8 layers, 8 heads, d 512, context 1023, dense
MLP 4096 vs 8 experts x 2048 top-2 (equal active parameters), AdamW lr 3e-4 -> 3e-5 cosine,
warm-up 2000, clip 1.0, dropout 0, batch 100, 600k steps (Tab. 6; a secondary summary says
60k). Guesses: weight decay 0.1 (nanoGPT's default, which chess-GPT trains with), balance loss
Switch-style with weight 0.01, router temperature 1, encoder bias in the score. Data: the paper
uses 16M Lichess games; set --config.data.name to a prepared TFDS dataset of such transcripts
(the demo's engine-generated games are far fewer and weaker). Hardware: 4x A40 in the paper.
Expected (Tab. 1): val loss ~0.21 for every kind; coverage / reconstruction GELU 0.356 / 0.608,
Switch 0.424 / 0.734, MoE-X (up-cycled) 0.428 / 0.840. batch 100 needs a mesh whose batch
shards divide 100 (e.g. 4 GPUs).

demo: 4 layers, 4 heads, d 64, context 128; dense 256 vs 8 experts x 128 top-2 (dropless
dispatch); batch 16, AdamW 3e-3 cosine, warm-up 30, 400 steps; board-state eval on layer 2 of 4
over 160 games.
Hardware: 2 CPU cores. Time and result: see projects/moex/README.md (demo table).

long: the demo model and schedule at context 512, so every generated game (<= ~335 characters)
is whole and the BSP protocol scores positions across it (the demo's 128 characters see only
the first ~10 moves); board-state eval on all 320 validation games (160 fit + 160 scored, ~4,500
positions). ~0.45-0.6 s a step on 2 CPU cores, ~4 min a run: `python -m projects.moex.demo
chess_long OUT` runs dense / Switch / MoE-X x 3 seeds outside the main job.

tiny: 2 layers, d 32, 8 experts x 16 top-2 vs dense 32, context 64, batch 8, 3 steps (tests).

colab (colab.ipynb on a Colab GPU; the only size whose data is downloaded): the paper's data,
chess-GPT's Lichess transcripts ('chess_lichess' from manual_dir: the notebook fetches
lichess_100mb.zip of the Hugging Face dataset adamkarvonen/chess_games and unzips
it there); 6 layers, 8 heads, d 256, context 512 (whole games: the BSP protocol scores
positions across them); dense 1024 vs 8 experts x 512 top-2; batch 32, AdamW 1e-3 -> 1e-4
cosine, warm-up 300, weight decay 0.1, b2 0.95, 6,000 steps (98M characters); board-state eval
on 500 validation games. Time: an ESTIMATE, not measured (no GPU here): ~10-20 min per run on
a T4, a few on an A100.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import config_variants as variants
from common.train import defaults
from projects.moex import config as config_lib

TEST_ARGS = ("tiny", "demo,dense_gelu", "long,switch", "paper,moex", "paper,switch",
             "tiny,moex_relu_only,stdlib", "colab,moex", "colab,dense_gelu")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "long", "tiny", "colab", "paper"),
                                              ("moex",) + tuple(k for k in config_lib.KINDS
                                                                if k != "moex"),
                                              ("chess", "stdlib")),
                                 keys={"steps": int})
  c = defaults.base_config()
  c.project = "moex"
  m = c.model
  config_lib.set_fields(m, "MoE-X chess", ffn=next(k for k in config_lib.KINDS if k in flags))
  c.eval.evaluators = ("loss", "board_state")
  c.eval.splits = ("validation",)
  c.eval.board_layer = -1          # -1: the middle layer (num_layers // 2)
  c.eval.board_games = 160         # validation games; half fit the labels, half are scored
  c.eval.board_batch_size = 16

  if "paper" in flags:  # the preset's sizes
    seq_len, batch, steps = 1023, 100, 600_000
    c.optimizer.update(dict(learning_rate=3e-4, warmup_steps=2000, end_lr_fraction=0.1,
                            weight_decay=0.1, b2=0.95))
    c.train.update(dict(log_every=100, eval_every=10_000, checkpoint_every=5_000))
    c.eval.update(dict(batch_size=64, max_batches=50, board_games=2000))
  elif "colab" in flags:
    m.update(dict(num_layers=6, num_heads=8, d_model=256, max_len=512, dense_hidden=1024,
                  num_experts=8, top_k=2, expert_hidden=512))
    seq_len, batch, steps = 512, 32, 6000
    c.optimizer.update(dict(learning_rate=1e-3, warmup_steps=300, end_lr_fraction=0.1,
                            weight_decay=0.1, b2=0.95))
    c.train.update(dict(log_every=100, eval_every=2000, checkpoint_every=1000))
    c.eval.update(dict(batch_size=64, max_batches=20, board_games=500, board_batch_size=32))
  elif "tiny" in flags:
    m.update(dict(num_layers=2, num_heads=2, d_model=32, max_len=64, dense_hidden=32,
                  num_experts=8, top_k=2, expert_hidden=16))
    seq_len, batch, steps = 64, 8, 3
    c.optimizer.update(dict(learning_rate=3e-3, warmup_steps=1, end_lr_fraction=0.1))
    c.train.update(dict(log_every=1, checkpoint_every=3, progress_bar=False))
    c.eval.update(dict(batch_size=8, max_batches=2, board_games=16, board_batch_size=8))
  else:
    # dropless: the same values as dense dispatch (tests), on CPU 112 against 164 (Switch) and
    # 144 (MoE-X) ms per train step here. The colab and paper sizes (GPU) keep dense dispatch:
    # ragged_dot was slower than it on an H200.
    m.update(dict(num_layers=4, num_heads=4, d_model=64, max_len=128, dense_hidden=256,
                  num_experts=8, top_k=2, expert_hidden=128, dispatch="dropless"))
    seq_len, batch, steps = 128, 16, 400
    c.optimizer.update(dict(learning_rate=3e-3, warmup_steps=30, end_lr_fraction=0.1))
    c.train.update(dict(log_every=50, checkpoint_every=400, progress_bar=False))
    c.eval.update(dict(batch_size=32, max_batches=8))
    if "long" in flags:
      m.max_len = seq_len = 512
      c.train.checkpoint_every = 100     # ~1 min of steps between saves
      c.eval.update(dict(batch_size=8, board_games=320))
  c.optimizer.update(dict(name="adamw", schedule="cosine", grad_clip_norm=1.0))
  c.train.update(dict(batch_size=batch, num_steps=steps, keep_checkpoints=2))

  if "stdlib" in flags:
    c.data = text_data_config("pystdlib_text", tokenizer="bytes", seq_len=seq_len)
    c.eval.evaluators = ("loss",)  # board states need chess transcripts
  elif "colab" in flags:
    c.data = text_data_config("chess_lichess", tokenizer="chess", seq_len=seq_len)
  else:
    c.data = text_data_config("chess_games", tokenizer="chess", seq_len=seq_len)
  if "steps" in values:
    variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = min(c.train.checkpoint_every, values["steps"])
  return c
