r"""A tiny Monet on chess-GPT transcripts (';1.e4 e5 2.Nf3 ...', 32 characters): the board-state
comparison of MoE-X Tab. 1 (Monet-HD / Monet-VD rows), trained like the MoE-X demo models.

Commands:

  python projects/monet/main.py --config projects/monet/configs/chess.py:demo,hd \
    --workdir /tmp/monet_chess_hd
  python projects/monet/main.py --config projects/monet/configs/chess.py:demo,vd \
    --workdir /tmp/monet_chess_vd
  # board-state coverage / reconstruction of layer 2's expert hidden code, 160 validation games
  python -m projects.monet.interpret.board --workdir /tmp/monet_chess_hd

Variants (comma-separated): demo (default) | tiny (tests: seconds); hd (default) | vd;
steps=<int>.

demo: sized like projects/moex/configs/chess.py:demo so the rows are comparable: 4 layers,
4 attention heads, d_model 64, context 128, batch 16, AdamW 3e-3 cosine, 30 warm-up steps,
clip 1.0, 400 steps, weight decay 0 (the base default, as MoE-X's demo). Monet experts: E = 32
per sub-router (1,024 experts per routing group), moe_dim 8, so E * moe_dim = 256 expert hidden
units per layer, the dense MLP width of the MoE-X demo; 4 routing heads, k = 4, a router per 2
layers; relu2 experts; uniformity weight 0.1 (stdlib_demo.py: the paper's 1e-3 collapsed the
routing of a model this small), ambiguity 1e-3 (paper). Data: 'chess_games', 'chess' tokenizer
(vocabulary 32). Board-state evaluation (projects/monet/interpret/board.py): layer 2 of 4, the
first 160 validation games, half fit / half scored, as projects/moex/board_eval.py.
Hardware: 2 CPU cores (shared with other jobs). Time: ~88 s per run (400 steps) + ~5 s board
eval. Measured (one run each, seed 0): validation CE (8 batches of 32) HD 1.090, VD 1.096
nats/char; board coverage / reconstruction on layer 2: HD 0.096 / 0.486 (256 units), VD
0.101 / 0.499 (512 units; its 256 own-half units alone: 0.090 / 0.440). The MoE-X demo's
models, same size and data: dense GELU 1.277 / 0.089 / 0.524, Switch 1.270 / 0.089 / 0.520,
MoE-X 1.253 / 0.078 / 0.487. The paper's Monet-HD 0.312 / 0.528 and Monet-VD 0.283 / 0.482 come
from 8-layer d-512 models trained on 16M Lichess games, not comparable in scale.

tiny: 2 layers, d_model 32, E = 8, moe_dim 4, k = 2, context 64, batch 8 (the tests' 8 forced
CPU devices), 3 steps; numbers are meaningless.
"""
import ml_collections

from common.data.config import text_data_config
from common.train import config_variants as variants
from common.train import defaults
from projects.monet import config as config_lib

TEST_ARGS = ("tiny", "demo,vd", "tiny,hd,steps=2")

CHESS_VOCAB = 32  # common/data/tokenizers.py ChessTokenizer: ' ' pad .. the 32 transcript chars


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = variants.parse(arg, groups=(("demo", "tiny"), ("hd", "vd")),
                                 keys={"steps": int})
  c = defaults.base_config()
  c.project = "monet"
  m = c.model
  config_lib.add_fields(m)
  m.update(dict(vocab_size=CHESS_VOCAB, hidden_size=64, num_hidden_layers=4,
                num_attention_heads=4, moe_dim=8, moe_heads=4, moe_experts=32, moe_topk=4,
                moe_groups=2, hidden_act="relu2", max_position_embeddings=128,
                moe_decompose="vertical" if "vd" in flags else "horizontal"))
  m.unif_weight = 0.1
  seq_len = 128
  c.train.update(dict(batch_size=16, num_steps=400, log_every=50, eval_every=0,
                      checkpoint_every=400, keep_checkpoints=2, progress_bar=False))
  c.optimizer.update(dict(name="adamw", learning_rate=3e-3, schedule="cosine", warmup_steps=30,
                          end_lr_fraction=0.1, grad_clip_norm=1.0))
  c.eval.update(dict(batch_size=32, splits=("validation",), max_batches=8))
  c.eval.evaluators = ("loss",)  # board states: projects/monet/interpret/board.py, after training

  if "tiny" in flags:
    seq_len = 64
    m.update(dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, moe_dim=4,
                  moe_heads=2, moe_experts=8, moe_topk=2, max_position_embeddings=64))
    defaults.smoke_run(c, batch_size=8, num_steps=3, eval_batch_size=8, eval_max_batches=2)
  c.data = text_data_config("chess_games", tokenizer="chess", seq_len=seq_len)  # 'lm' format
  if "steps" in values:
    variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = min(c.train.checkpoint_every, values["steps"])
  return c
