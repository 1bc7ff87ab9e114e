"""Text domains of a corpus, cut into token windows for routing statistics and masking.

Stdlib domains (`STDLIB_DOMAINS`), chosen by top-level package so that each holds ~0.5-1.4 MB of
source in the 'pystdlib_text' train split (CPython 3.11) and they differ in what the text is:
  codecs   encodings/                           codec modules: mostly decoding tables (escapes)
  async    asyncio/, concurrent/                event loops, futures, transports
  email    email/, http/, urllib/               mail and web message formats (RFC headers, URLs)
  gui      tkinter/, idlelib/, turtledemo/      Tk widgets and the IDLE editor
A file belongs to the first domain whose prefix its path starts with; other files are unused.

`TEXT_DOMAINS` are the three domains of the 'text_domains' corpus (Python code, English prose,
chess games: common/data/builders/text_domains), which differ far more than four parts of one
code base.

Each domain's files are shuffled (fixed seed) and split alternately into a 'stats' half (routing
statistics, expert selection) and an 'eval' half (loss measurement), so the masked experts are
chosen on different files than the ones the loss change is measured on. With `eval_split`, the
'eval' windows come from that split instead (documents the model never trained on).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from common.data import sources, tokenizers
from common.data import config as data_config_lib

STDLIB_DOMAINS: dict[str, tuple[str, ...]] = {
    "codecs": ("encodings/",),
    "async": ("asyncio/", "concurrent/"),
    "email": ("email/", "http/", "urllib/"),
    "gui": ("tkinter/", "idlelib/", "turtledemo/"),
}
TEXT_DOMAINS: dict[str, tuple[str, ...]] = {
    "python": ("python/",), "prose": ("prose/",), "chess": ("chess/",)}


def domain_of(path: str, domains: Mapping[str, Sequence[str]] = STDLIB_DOMAINS) -> str | None:
  """The first domain whose path prefix matches, or None."""
  for name, prefixes in domains.items():
    if any(path.startswith(p) for p in prefixes):
      return name
  return None


def _windows(token_docs: list[np.ndarray], length: int, limit: int) -> np.ndarray:
  """Concatenate documents (EOS-separated) and cut into non-overlapping rows of `length`."""
  if not token_docs:
    return np.zeros((0, length), np.int32)
  stream = np.concatenate(token_docs)
  n = min(len(stream) // length, limit)
  return stream[:n * length].reshape(n, length).astype(np.int32)


def domain_windows(data_config, *, seq_len: int, max_windows: int = 64,
                   domains: Mapping[str, Sequence[str]] = STDLIB_DOMAINS, split: str = "train",
                   eval_split: str | None = None,
                   seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
  """{domain: {'stats': (N, seq_len + 1) int32, 'eval': (N, seq_len + 1)}} token windows.

  Windows hold seq_len + 1 tokens: inputs = w[:, :-1], targets = w[:, 1:]. Each half holds at
  most `max_windows` rows; a domain with no files raises ValueError. Without `eval_split` the
  halves are alternate files of `split`; with it, 'stats' is all of `split` and 'eval' all of
  `eval_split`.
  """
  cfg = data_config_lib.resolve(data_config)
  if cfg.kind != "text":
    raise ValueError(f"data_config.kind={cfg.kind!r}: domain windows need a 'text' dataset.")
  if not isinstance(max_windows, int) or max_windows < 1:
    raise ValueError(f"max_windows={max_windows!r}: must be a positive int.")
  tok = tokenizers.from_config(cfg)
  rng = np.random.default_rng(seed)

  def documents(split_name):
    """{domain: token documents (EOS-terminated) in a seeded random order}."""
    source, info = sources.open_split(cfg, split_name)
    if "path" not in info.features:
      raise ValueError(f"dataset {cfg.name!r} has no 'path' feature to split into domains; "
                       f"features: {sorted(info.features.keys())}.")
    by_domain: dict[str, list[str]] = {name: [] for name in domains}
    for k in range(len(source)):
      example = source[k]
      name = domain_of(sources.as_text(example["path"]), domains)
      if name is not None:
        by_domain[name].append(sources.as_text(example[cfg.text_key]))
    out = {}
    for name, texts in by_domain.items():
      if not texts:
        raise ValueError(f"domain {name!r} (prefixes {tuple(domains[name])}) has no files in "
                         f"{cfg.name!r} split {split_name!r}.")
      out[name] = [np.append(tok.encode(texts[i]), np.int32(tok.eos_id))
                   for i in rng.permutation(len(texts))]
    return out

  docs = documents(split)
  held_out = documents(eval_split) if eval_split else None
  cut = lambda d: _windows(d, seq_len + 1, max_windows)
  if held_out is None:
    return {name: {"stats": cut(d[0::2]), "eval": cut(d[1::2])} for name, d in docs.items()}
  return {name: {"stats": cut(d), "eval": cut(held_out[name])} for name, d in docs.items()}
