"""Strided perplexity: the Wikitext-2 protocol of gmlwns2000/sea-attention, on any token stream.

Protocol (HF "perplexity of fixed-length models" recipe, as `src/dataset/wikitext2.py` and
`opt_trainer.py::evaluate` use it): the whole test text is tokenised once; windows begin at
0, stride, 2*stride, ...; window w = tokens[b : min(b + max_length, N)], of which the last
trg_len = end - previous_end tokens are labels (HF's shift leaves min(trg_len, len - 1)
predictions scored); the model's mean NLL over them is weighted by trg_len:
    PPL = exp(sum_w mean_nll_w * trg_len_w / sum_w trg_len_w).
SEA uses stride = max_length = 2048 (disjoint windows, every token but each window's first
scored). Text for Wikitext-2: "\\n\\n".join(rows) of wikitext-2-raw-v1 'test', whose rows are the
lines of wiki.test.raw with their newline (HF's dataset script), tokenised by OPT's GPT-2 BPE with
one leading BOS </s> (id 2), as OPT's HF tokenizer encodes a string.
The same evaluator reads our byte-level pystdlib_text split (docs joined by EOS, as packing does).
"""
from __future__ import annotations

import math
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from common.eval import registry

OPT_BOS_ID = 2  # facebook/opt-* tokenizer: bos = eos = "</s>" = 2, prepended to every encoding
WIKITEXT_FILES = ("wiki.test.raw", "wikitext-2-raw/wiki.test.raw")


def windows(num_tokens: int, max_length: int, stride: int) -> list[tuple[int, int, int]]:
  """(begin, end, trg_len) of every window of the HF strided recipe."""
  if max_length < 2 or not 1 <= stride <= max_length:
    raise ValueError(f"max_length={max_length}, stride={stride}: need max_length >= 2 and "
                     "1 <= stride <= max_length.")
  if num_tokens < 2:
    raise ValueError(f"the token stream has {num_tokens} tokens; perplexity needs >= 2.")
  out, prev_end = [], 0
  for begin in range(0, num_tokens, stride):
    end = min(begin + max_length, num_tokens)
    out.append((begin, end, end - prev_end))
    prev_end = end
    if end == num_tokens:
      break
  return out


def _window_nll(model: nnx.Module, tokens: jax.Array, scored: jax.Array) -> jax.Array:
  """Mean NLL of each row's last `scored` predictions; tokens [B, L], scored int [B]."""
  logits = model(tokens[:, :-1]).logits.astype(jnp.float32)
  logp = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]
  pos = jnp.arange(tokens.shape[1] - 1)
  w = (pos[None, :] >= tokens.shape[1] - 1 - scored[:, None]).astype(jnp.float32)
  return jnp.sum(nll * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)


_window_nll_jit = nnx.jit(_window_nll)


def strided_nll(model: nnx.Module, ids: np.ndarray, *, max_length: int, stride: int,
                batch_size: int = 1,
                nll_fn: Callable | None = None) -> dict[str, float]:
  """Mean NLL per token (nats) of `model` (tokens [N, T] -> OPTOutput) on a 1-D id stream."""
  ids = np.asarray(ids, np.int32)
  fn = nll_fn or _window_nll_jit
  spans = windows(len(ids), max_length, stride)
  total, weight = 0.0, 0
  by_len: dict[int, list] = {}
  for b, e, trg in spans:
    by_len.setdefault(e - b, []).append((b, e, trg))
  for length, group in by_len.items():  # equal lengths batch together (one compile per length)
    for i in range(0, len(group), batch_size):
      chunk = group[i:i + batch_size]
      toks = np.stack([ids[b:e] for b, e, _ in chunk])
      scored = np.array([min(trg, length - 1) for _, _, trg in chunk], np.int32)
      means = np.asarray(fn(model, jnp.asarray(toks), jnp.asarray(scored)))
      for mean, (_, _, trg) in zip(means, chunk):
        total += float(mean) * trg
        weight += trg
  nll = total / weight
  return {"nll": nll, "ppl": math.exp(nll), "bits_per_token": nll / math.log(2),
          "tokens": float(weight), "windows": float(len(spans))}


# ---------------------------------------------------------------- token streams
def stdlib_stream(data_config, split: str, max_tokens: int) -> np.ndarray:
  """Token ids of a common.data text split: documents tokenised and joined by EOS."""
  from common.data import pipeline, sources, tokenizers  # pylint: disable=g-import-not-at-top
  cfg = pipeline.validate(data_config)
  source, _ = sources.open_split(cfg, split)
  tok = tokenizers.from_config(cfg)
  parts, n = [], 0
  for i in range(len(source)):
    ids = np.append(tok.encode(sources.as_text(source[i][cfg.text_key])), tok.eos_id)
    parts.append(ids)
    n += len(ids)
    if max_tokens and n >= max_tokens:
      break
  ids = np.concatenate(parts).astype(np.int32)
  return ids[:max_tokens] if max_tokens else ids


def wikitext2_text(manual_dir: str) -> str:
  """The wikitext-2-raw-v1 test text as the official evaluation joins it."""
  for name in WIKITEXT_FILES:
    path = os.path.join(manual_dir, name)
    if os.path.exists(path):
      with open(path, encoding="utf-8") as f:
        rows = f.readlines()  # HF's rows: one per line, newline kept
      return "\n\n".join(rows)
  raise FileNotFoundError(
      f"no {' or '.join(WIKITEXT_FILES)} under manual_dir={manual_dir!r}: download "
      "wikitext-2-raw-v1 (https://s3.amazonaws.com/research.metamind.io/wikitext/"
      "wikitext-2-raw-v1.zip), unzip it there, and pass its folder.")


def opt_bpe_encode(text: str, tokenizer_dir: str) -> np.ndarray:
  """OPT's GPT-2 byte-level BPE (common.data.tokenizers 'bpe:<dir>') with one leading BOS."""
  from common.data import tokenizers  # pylint: disable=g-import-not-at-top
  ids = tokenizers.bpe_tokenizer(tokenizer_dir).encode(text)
  return np.concatenate([np.asarray([OPT_BOS_ID], np.int32), ids])


def token_stream(spec, data_config) -> np.ndarray:
  """ids for one `config.eval.strided` spec (source 'wikitext2' or '<split>' of config.data)."""
  if spec.source == "wikitext2":
    if not spec.manual_dir or not spec.tokenizer_dir:
      raise ValueError("config.eval.strided.source='wikitext2' needs manual_dir (the folder "
                       "with wiki.test.raw) and tokenizer_dir (the HF OPT checkpoint folder).")
    ids = opt_bpe_encode(wikitext2_text(spec.manual_dir), spec.tokenizer_dir)
    return ids[:spec.max_tokens] if spec.max_tokens else ids
  return stdlib_stream(data_config, spec.source, spec.max_tokens)


class StridedPerplexity:
  """Evaluator: strided perplexity of the task's student (or LM) on `config.eval.strided`."""

  def __init__(self, config, task):
    self.spec = config.eval.strided
    self.config, self.task = config, task
    self._ids = None

  def __call__(self, model: nnx.Module, ctx) -> dict[str, float]:
    del ctx
    if self._ids is None:
      self._ids = token_stream(self.spec, self.config.data)
    out = strided_nll(self.task.student(model), self._ids, max_length=self.spec.max_length,
                      stride=self.spec.stride, batch_size=self.spec.batch_size)
    return {f"{self.spec.name}/{k}": v for k, v in out.items()}


registry.register("strided", lambda ctx: StridedPerplexity(ctx.config, ctx.task))
