"""The official hparam sets (TF `sparse_transformer.py`, `sparse_image_transformer.py`; spec §1.5).

`model_fields(name)` returns the `config.model` values of a set; `defaults()` the fields every
config has. Settings that the official sets share (`sparse_transformer_local`): share_qk, EMA
k-means with decay 0.999, beta 1e-4, uniform_unit_scaling init with gain 0.2, query block 256
with a 256 memory flange, Shaw relative positions up to 513 (text only).
"""
from __future__ import annotations

import copy
from typing import Any


def defaults() -> dict[str, Any]:
  """Every config.model field this project reads (see configs/paper.py for their meaning)."""
  return dict(
      vocab_size=258, embedding_dims=256, hidden_size=1024, num_layers=14, filter_size=3072,
      ffn="geglu", num_local_heads=8, num_routing_heads=8, skip_first=0, num_clusters=8,
      window=512, query_block=256, memory_flange=256, local_relative=True,
      routing_relative=True, max_relative_position=513, attention_dropout=0.0,
      relu_dropout=0.0, embedding_dropout=0.0, residual_dropout=0.1, target_dropout=0.0,
      kmeans_decay=0.999, beta=1e-4, initializer_gain=0.2, positions="none", image_shape=(),
      attention_impl="auto", kernel_impl="auto")


_SETS: dict[str, dict[str, Any]] = {
    # WT103, n=4096: 14 layers, 1024 wide, emb 256, 8 local + 8 routing heads, K=8, w=512.
    "wikitext103_4k": dict(
        seq_len=4096, num_layers=14, hidden_size=1024, embedding_dims=256, filter_size=3072,
        num_local_heads=8, num_routing_heads=8, num_clusters=8, window=512,
        attention_dropout=0.4, relu_dropout=0.4, embedding_dropout=0.4, target_dropout=0.25,
        weight_decay=2e-5),
    "wikitext103_1k": dict(
        seq_len=1024, num_layers=20, hidden_size=1024, embedding_dims=256, filter_size=3072,
        num_local_heads=8, num_routing_heads=8, num_clusters=2, window=512,
        attention_dropout=0.4, relu_dropout=0.4, embedding_dropout=0.4, target_dropout=0.2,
        weight_decay=2e-5),
    # Released RT-base (README): routing only in the last of 22 layers (skip_first 21).
    "pg19_8k": dict(
        seq_len=8192, num_layers=22, hidden_size=1032, embedding_dims=1032, filter_size=4096,
        num_local_heads=6, num_routing_heads=2, num_clusters=16, window=512, skip_first=21,
        weight_decay=0.0),
    "enwik8_8k": dict(
        seq_len=8192, num_layers=12, hidden_size=1024, embedding_dims=1024, filter_size=3072,
        num_local_heads=4, num_routing_heads=4, num_clusters=16, window=512, weight_decay=0.0),
    # Pixel LMs (imagenet_local_cluster, cifar10_local_cluster): relu FFN with biases, no
    # relative positions, residual dropout 0.3 ("dan"), hparams.dropout 0, per-channel pixel
    # embeddings + learned n-d positions (add_positional_emb True), 256 intensities.
    "imagenet64": dict(
        seq_len=64 * 64 * 3, num_layers=24, hidden_size=1024, embedding_dims=1024,
        filter_size=2048, ffn="relu", num_local_heads=12, num_routing_heads=4, num_clusters=8,
        window=2048, local_relative=False, routing_relative=False, max_relative_position=0,
        residual_dropout=0.3, weight_decay=0.0, vocab_size=256, positions="learned_nd",
        image_shape=(64, 64, 3)),
    "cifar10": dict(
        seq_len=32 * 32 * 3, num_layers=12, hidden_size=1024, embedding_dims=1024,
        filter_size=2048, ffn="relu", num_local_heads=4, num_routing_heads=4, num_clusters=6,
        window=512, local_relative=False, routing_relative=False, max_relative_position=0,
        residual_dropout=0.3, weight_decay=0.0, vocab_size=256, positions="learned_nd",
        image_shape=(32, 32, 3)),
}
PRESETS = tuple(_SETS)
IMAGE_PRESETS = ("imagenet64", "cifar10")


def preset(name: str) -> dict[str, Any]:
  """A copy of the set's values (model fields plus 'seq_len' and 'weight_decay')."""
  if name not in _SETS:
    raise ValueError(f"preset {name!r} is unknown; allowed: {list(PRESETS)}.")
  return copy.deepcopy(_SETS[name])
