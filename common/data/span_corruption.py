"""T5 span corruption ("random spans" denoising), in numpy, deterministic per example.

For a chunk of L tokens: round(L * noise_density) noise tokens (at least 1, at most L - 1)
form max(1, round(noise / mean_noise_span_length)) spans. Noise and non-noise lengths are
each a uniformly random composition into that many positive parts; spans interleave starting
with non-noise. Each noise span becomes one sentinel in the encoder input; the decoder target
is, per span, its sentinel followed by the span's tokens. Both end with EOS. Sentinel i is
`vocab_size - 1 - i` (top of the vocabulary downward), as in T5.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def noise_counts(length: int, noise_density: float,
                 mean_noise_span_length: float) -> tuple[int, int]:
  """(noise tokens, noise spans) for a chunk of `length` >= 2 tokens."""
  num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
  num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
  # Every span needs a non-noise neighbour before it; only bites at extreme settings.
  num_spans = min(num_spans, num_noise, length - num_noise)
  return num_noise, num_spans


def corrupted_lengths(length: int, noise_density: float,
                      mean_noise_span_length: float) -> tuple[int, int]:
  """(encoder length, decoder length), EOS included, for a chunk of `length` tokens."""
  if length < 2:
    return length + 1, 1
  num_noise, num_spans = noise_counts(length, noise_density, mean_noise_span_length)
  return length - num_noise + num_spans + 1, num_noise + num_spans + 1


def compute_lengths(inputs_length: int, noise_density: float,
                    mean_noise_span_length: float) -> tuple[int, int]:
  """(raw chunk length, targets length) so corrupted chunks fill `inputs_length` exactly.

  The largest raw length whose encoder input (with sentinels and EOS) fits, as T5's
  `random_spans_helper` computes it: 512 -> (568, 114) at density 0.15 and mean span 3.
  Encoder and decoder lengths never decrease with the raw length, so every shorter chunk fits.
  """
  if inputs_length < 3:
    raise ValueError(f"inputs_length={inputs_length} must be >= 3.")
  tokens_length = inputs_length - 1
  while corrupted_lengths(tokens_length + 1, noise_density,
                          mean_noise_span_length)[0] <= inputs_length:
    tokens_length += 1
  return tokens_length, corrupted_lengths(tokens_length, noise_density,
                                          mean_noise_span_length)[1]


def _random_composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
  """`parts` positive integers summing to `total`, uniformly over all such compositions."""
  cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
  return np.diff(np.concatenate([[0], cuts, [total]]))


def noise_mask(length: int, noise_density: float, mean_noise_span_length: float,
               rng: np.random.Generator) -> np.ndarray:
  """bool [length]: True where a token is replaced (noise). All False if length < 2."""
  if length < 2:
    return np.zeros(length, bool)
  num_noise, num_spans = noise_counts(length, noise_density, mean_noise_span_length)
  noise = _random_composition(num_noise, num_spans, rng)
  keep = _random_composition(length - num_noise, num_spans, rng)
  lengths = np.stack([keep, noise], axis=1).reshape(-1)
  flags = np.tile([False, True], num_spans)
  return np.repeat(flags, lengths)


def corrupt(tokens: np.ndarray, mask: np.ndarray, sentinel: Callable[[np.ndarray], np.ndarray],
            eos_id: int) -> tuple[np.ndarray, np.ndarray]:
  """(encoder ids, decoder target ids), each ending with EOS. `sentinel(span_index)` -> id."""
  tokens = np.asarray(tokens, np.int64)
  starts = mask & ~np.concatenate([[False], mask[:-1]])
  span = np.cumsum(starts) - 1
  sentinels = np.where(starts, sentinel(np.maximum(span, 0)), -1)
  # Each position contributes (maybe a sentinel, maybe its token); -1 marks "nothing".
  enc = np.stack([sentinels, np.where(mask, -1, tokens)], axis=1).reshape(-1)
  dec = np.stack([sentinels, np.where(mask, tokens, -1)], axis=1).reshape(-1)
  enc = np.append(enc[enc >= 0], eos_id).astype(np.int32)
  dec = np.append(dec[dec >= 0], eos_id).astype(np.int32)
  return enc, dec


def make_example(tokens: np.ndarray, rng: np.random.Generator, *, vocab_size: int,
                 eos_id: int, inputs_length: int, targets_length: int,
                 noise_density: float, mean_noise_span_length: float) -> dict[str, np.ndarray]:
  """The seq2seq features for one raw chunk (pad 0; decoder input is the target shifted right)."""
  mask = noise_mask(len(tokens), noise_density, mean_noise_span_length, rng)
  enc, dec = corrupt(tokens, mask, lambda i: vocab_size - 1 - i, eos_id)
  if len(enc) > inputs_length or len(dec) > targets_length:
    raise AssertionError(f"corrupted lengths {len(enc)}/{len(dec)} exceed "
                         f"{inputs_length}/{targets_length}; compute_lengths is inconsistent.")
  out = {
      "encoder_input_tokens": np.zeros(inputs_length, np.int32),
      "decoder_target_tokens": np.zeros(targets_length, np.int32),
      "decoder_input_tokens": np.zeros(targets_length, np.int32),
      "decoder_loss_weights": np.zeros(targets_length, np.float32),
  }
  out["encoder_input_tokens"][:len(enc)] = enc
  out["decoder_target_tokens"][:len(dec)] = dec
  out["decoder_input_tokens"][1:len(dec)] = dec[:-1]  # id 0 (pad) starts decoding, as in T5
  out["decoder_loss_weights"][:len(dec)] = 1.0
  return out


def reconstruct(encoder_ids: np.ndarray, target_ids: np.ndarray, base_vocab_size: int,
                eos_id: int = 1, pad_id: int = 0) -> np.ndarray:
  """Inverse of `corrupt`: the original tokens (used by tests and for debugging)."""
  def upto_eos(ids):
    ids = [int(t) for t in ids if t != pad_id]
    return ids[:ids.index(eos_id)] if eos_id in ids else ids
  spans, current = {}, None
  for t in upto_eos(target_ids):
    if t >= base_vocab_size:
      current = spans.setdefault(t, [])
    elif current is not None:
      current.append(t)
  out = []
  for t in upto_eos(encoder_ids):
    out.extend(spans.get(t, []) if t >= base_vocab_size else [t])
  return np.asarray(out, np.int32)
