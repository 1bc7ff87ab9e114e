"""SparseJEPA: I-JEPA (facebookresearch/ijepa@52c1ae95) plus an oi-VAE style group-sparsity penalty.

Modules:
  config.py         JEPAConfig, the official vit_* presets, from_config(config.model) (checked
                    against the allowed fields) and base_config() that configs/ start from.
  model.py          encoder ViT and predictor ViT (remat_policy per block).
  vit_block.py      the pre-LN transformer block (I-JEPA attention; common Linear/LayerNorm/Mlp).
  pos_embed.py      fixed 2-D sin-cos position embedding (official quirks kept).
  tensors.py        apply_masks / repeat_interleave_batch gathers.
  masks.py          multi-block mask collator (numpy, seeded; grain transform).
  losses.py         smooth-L1 I-JEPA loss, target LayerNorm and the SparseJEPA total loss.
  sparsity_head.py  the SparseJEPA penalty module and latent-space metrics.
  schedules.py      EMA momentum, warmup-cosine LR, cosine WD, weight-decay mask, EMA update.
  convert.py        CLI for the official-checkpoint converter in third_party/ijepa.
  jepa.py           the trained model: encoder, predictor, head + the EMA target encoder (state).
  masked_data.py    batches with reproducible, resumable multi-block masks.
  task.py           the Task (loss, EMA after_update, data).
  evaluators.py     loss, linear probe, low-level probe, latent sparsity; probes.py ridge solvers.
  demo.py           I-JEPA vs SparseJEPA on MNIST-5k for the main job; main.py the CLI.

Linear, Conv2d, LayerNorm, the MLP, init keys and trunc_normal come from common/layers.
"""
