"""SparseJEPA: I-JEPA (facebookresearch/ijepa@52c1ae95) plus an oi-VAE style group-sparsity penalty.

Modules:
  model.py          encoder ViT, predictor ViT and the I-JEPA forward (h, z, loss).
  layers.py         pre-LN transformer block pieces (attention, MLP, block).
  pos_embed.py      fixed 2-D sin-cos position embedding (official quirks kept).
  tensors.py        apply_masks / repeat_interleave_batch gathers and the official init.
  masks.py          multi-block mask collator (numpy, seeded; grain transform).
  losses.py         smooth-L1 I-JEPA loss, target LayerNorm and the SparseJEPA total loss.
  sparsity_head.py  the SparseJEPA penalty module and latent-space metrics.
  schedules.py      EMA momentum, warmup-cosine LR, cosine WD, weight-decay mask, EMA update.
  convert.py        CLI for the official-checkpoint converter in third_party/ijepa.
  jepa.py           the trained model: encoder, predictor, head + the EMA target encoder (state).
  masked_data.py    batches with reproducible, resumable multi-block masks.
  task.py           the Task (loss, EMA after_update, data); config_lib.py its config fields.
  evaluators.py     loss, linear probe, low-level probe, latent sparsity; probes.py ridge solvers.
  demo.py           I-JEPA vs SparseJEPA on MNIST-5k for the main job; main.py the CLI.
"""
