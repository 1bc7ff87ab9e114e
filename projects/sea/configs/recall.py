r"""SEA at CPU scale on long-range associative recall: a dense OPT teacher, then three students.

Commands (the demo, projects/sea/demo.py, runs all of them, three seeds per student kind):

  python projects/sea/main.py --config projects/sea/configs/recall.py:teacher \
    --workdir /tmp/sea_recall/teacher
  python -m projects.sea.export_opt --dense_workdir /tmp/sea_recall/teacher \
    --config projects/sea/configs/recall.py:student,student_attention=sea,seed=0 \
    --workdir /tmp/sea_recall/init_sea_s0
  python projects/sea/main.py \
    --config projects/sea/configs/recall.py:student,student_attention=sea,seed=0 \
    --config.train.init_from=/tmp/sea_recall/init_sea_s0 --workdir /tmp/sea_recall/sea_s0

Variants (comma-separated): teacher (mode 'lm', every layer dense) | student (mode 'distill',
every layer a student attention); demo (default) | tiny (CI: seconds);
student_attention=sea (default; the official SEA layer) | performer (SEA's Performer alone, the
paper's Performer row) | local (causal window of at most sea_k keys); steps=<int>; seed=<int>
(for students: the estimator's / Performer's initialisation and the data order).

Task (common.data.recall): 1024 tokens, 32 keys with 8 values each stored once per sequence
among 16 filler tokens; a quarter of the keys are queried 2..64 tokens after their store, the
rest 256 or more after it. Only the answers are scored: chance is ln 8 = 2.08 nats (the
answers' unigram entropy); a model that finds the store by content reaches 0. Validation: 128
fixed sequences (the same for every seed).

Model: OPT-shaped, 1 layer, d_model 64, 2 heads of 32, FFN 256, 1024 positions (+2), vocab =
the recall vocabulary (313) rounded up to a multiple of 8 (320); unlike OPT, an untied LM head
and lecun-normal matrices (config.py: tie_word_embeddings, matrix_init), without which the
teacher did not learn the task in small trials. Students: k = 64 (SEA: about
64 keys per query and head on average; local: at most the 64 most recent keys, blocks of 8, so
far answers at >= 256 are out of its reach), T_M = 128, nbf 8.
Teacher: AdamW 3e-3 cosine, warm-up 20, batch 4, 600 steps (300 left a T = 512 trial at far
answer CE 1.2 nats; 600 reached 0.38). Students (initialised from the
teacher by export_opt, teacher frozen): distillation (task.py; the official objective for SEA,
its existing terms for the others), batch 4, 100 steps, AdamW 1e-3 constant with the official
lr groups (SEA's parameters x10, the rest x0.2), as configs/stdlib_demo.py.
What it shows: how much of the teacher's long-range recall each student keeps for the same
steps (answer CE near / far vs the teacher), how much of the teacher's attention mass the
student reads, and the attention KL; SEA evaluated at other k without retraining (dynamic k).
Hardware: 2 CPU cores. Time: see README. Result: see README.

tiny: 128 tokens, 4 keys, near <= 16, far >= 64, 8 validation sequences; d_model 32, FFN 64,
k 16 (local blocks of 2), T_M 32; batch 8, 2 steps.
"""
import ml_collections

from common.data import pipeline
from common.data.config import recall_data_config
from common.train import config_variants, defaults
from projects.sea import config as sea_config

TEST_ARGS = ("teacher,tiny", "student,tiny,student_attention=sea",
             "student,tiny,student_attention=performer", "student,tiny,student_attention=local")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  flags, values = config_variants.parse(
      arg, groups=(("teacher", "student"), ("demo", "tiny")),
      keys={"student_attention": str, "steps": int, "seed": int})
  teacher, tiny = "teacher" in flags, "tiny" in flags
  kind = values.get("student_attention", "sea")
  if kind not in sea_config.STUDENT_ATTENTIONS:
    raise ValueError(f"config variant student_attention={kind!r}; allowed: "
                     f"{sea_config.STUDENT_ATTENTIONS}.")
  c = defaults.base_config()
  c.project = "sea"
  c.seed = values.get("seed", 0)
  c.data = recall_data_config(seq_len=1024, num_keys=32, num_values=8, num_fillers=16,
                              near_max=64, far_min=256, near_fraction=0.25, eval_examples=128)
  if tiny:
    c.data.update(dict(seq_len=128, num_keys=4, near_max=16, far_min=64, eval_examples=8))
  vocab = -(-pipeline.vocab_size(c.data) // 8) * 8
  m = c.model
  m.update(sea_config.model_fields())
  m.update(dict(vocab_size=vocab, hidden_size=64, num_layers=1, num_heads=2, ffn_dim=256,
                max_position_embeddings=1024, sea_k=64, sea_predictor_length=128,
                student_attention=kind))
  # Trained from scratch, OPT's tied head and N(0, 0.02) matrices left a 1-layer d_model-64
  # teacher at chance for hundreds of steps in every small trial (T = 128..512); an untied head
  # and lecun-normal matrices learn the recall (README). Students load every dense weight
  # (the lm_head too) from the teacher, so only the teacher's initialisation depends on this.
  m.update(dict(tie_word_embeddings=False, matrix_init="lecun"))
  m.mode = "lm" if teacher else "distill"
  m.sea_layers = "none" if teacher else "all"

  # Teacher 600 steps (the issue asked for 300): with this recipe a T = 512 trial reached far
  # answer CE 1.22 nats after 300 steps and 0.38 after 600 (chance 2.08); T = 1024 is harder.
  c.train.update(dict(batch_size=4, num_steps=600 if teacher else 100, log_every=25 if teacher
                      else 10, eval_every=0, checkpoint_every=600 if teacher else 100,
                      keep_checkpoints=1))
  c.optimizer.update(dict(name="adamw", learning_rate=3e-3 if teacher else 1e-3,
                          schedule="cosine" if teacher else "constant",
                          warmup_steps=20 if teacher else 0, weight_decay=0.01,
                          weight_decay_mask="no_bias_norm", grad_clip_norm=1.0,
                          lr_multipliers=() if teacher else sea_config.SEA_LR_GROUPS))
  c.eval.update(dict(batch_size=8, splits=("validation",), max_batches=0))
  c.eval.evaluators = ("loss", "recall")

  if tiny:
    m.update(dict(hidden_size=32, ffn_dim=64, max_position_embeddings=128, sea_k=16,
                  sea_predictor_length=32))
    c.train.update(dict(batch_size=8, num_steps=2, log_every=1, checkpoint_every=2,
                        async_checkpointing=False, progress_bar=False))
    c.optimizer.warmup_steps = 0
  if "steps" in values:
    config_variants.set_steps(c, values["steps"])
    c.train.checkpoint_every = values["steps"]
  return c
