"""Tokenizers behind one small interface, chosen by `data_config.tokenizer`.

  'bytes'                     ByteTokenizer: 0 pad, 1 eos, 2..257 the bytes 0..255.
  'sentencepiece:<N>'         a SentencePiece unigram model with N pieces, trained locally
                              (once, then cached) on the config's train split.
  'sentencepiece:<path>'      an existing SentencePiece model file.
  'chess'                     ChessTokenizer: chess-GPT's 32 PGN characters (no specials).
  'bpe:<dir>'                 BPETokenizer: a GPT-2-style byte-level BPE from an HF folder
                              (tokenizer.json, or vocab.json + merges.txt: GPT-2, OPT, ...).

'bytes' and 'sentencepiece' reserve `extra_ids` sentinel ids at the TOP of the vocabulary (T5
convention): sentinel i is `vocab_size - 1 - i`. Both use pad 0 and eos 1, so padding and
packing code never needs to know which of them it has. 'chess' keeps chess-GPT's exact ids
(Karvonen's meta.pkl), so its vocabulary stays at 32: pad is id 0 (the space character; padding
is masked by the LM 'weights', so it is never trained on), there is no EOS (`eos_id` is None:
games are separated by the ';' each game starts with) and no sentinels. 'bpe' keeps the
checkpoint's own ids (GPT-2: 50,257 tokens, eos = pad = '<|endoftext|>' 50256; OPT: '</s>' 2), so
models converted from those checkpoints read them unchanged.
"""
from __future__ import annotations

import abc
import io
import logging
import os
import re
import tempfile
import threading
from typing import Iterable, Sequence

import numpy as np

log = logging.getLogger(__name__)

PAD_ID = 0
EOS_ID = 1
MIN_SENTENCEPIECE_VOCAB = 320  # 256 byte-fallback pieces + specials + some real pieces


def _as_bytes(text: str | bytes) -> bytes:
  """UTF-8 bytes of `text` (bytes pass through)."""
  return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _as_str(text: str | bytes) -> str:
  """`text` as str for a subword library: bytes are decoded as UTF-8, invalid ones as U+FFFD."""
  return text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text


class Tokenizer(abc.ABC):
  """Text <-> int32 ids. Subclasses define the base vocabulary; sentinels sit above it."""

  pad_id = PAD_ID
  eos_id = EOS_ID

  def __init__(self, extra_ids: int = 0):
    if extra_ids < 0:
      raise ValueError(f"extra_ids={extra_ids} must be >= 0.")
    self.extra_ids = extra_ids

  @property
  @abc.abstractmethod
  def base_vocab_size(self) -> int:
    """Ids below this are real tokens (including pad/eos)."""

  @property
  def vocab_size(self) -> int:
    return self.base_vocab_size + self.extra_ids

  def sentinel_id(self, i: int) -> int:
    if not 0 <= i < self.extra_ids:
      raise ValueError(f"sentinel index {i} out of range: this tokenizer has "
                       f"extra_ids={self.extra_ids}.")
    return self.vocab_size - 1 - i

  def is_sentinel(self, ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids) >= self.base_vocab_size

  @abc.abstractmethod
  def encode(self, text: str | bytes) -> np.ndarray:
    """int32 ids, without eos."""

  @abc.abstractmethod
  def _decode_base(self, ids: Sequence[int]) -> str:
    """Text of ids that are all real tokens (no pad/eos/sentinels)."""

  def decode(self, ids: Iterable[int]) -> str:
    """Text of `ids`; pad and eos are dropped, sentinel i shows as '<extra_id_i>'."""
    out, run = [], []
    for t in (int(t) for t in ids):
      if t in (self.pad_id, self.eos_id):
        continue
      if t >= self.base_vocab_size:
        out.append(self._decode_base(run))
        run = []
        out.append(f"<extra_id_{self.vocab_size - 1 - t}>")
      else:
        run.append(t)
    out.append(self._decode_base(run))
    return "".join(out)


class ByteTokenizer(Tokenizer):
  """UTF-8 bytes: byte b is id b + 2. Lossless for any text."""

  OFFSET = 2

  @property
  def base_vocab_size(self) -> int:
    return 256 + self.OFFSET

  def encode(self, text: str | bytes) -> np.ndarray:
    data = _as_bytes(text)
    return np.frombuffer(data, np.uint8).astype(np.int32) + self.OFFSET

  def _decode_base(self, ids: Sequence[int]) -> str:
    raw = bytes(int(i) - self.OFFSET for i in ids)
    return raw.decode("utf-8", errors="replace")


CHESS_VOCAB = " #+-.0123456789;=BKNOQRabcdefghx"


class ChessTokenizer(Tokenizer):
  """chess-GPT characters: id i is CHESS_VOCAB[i] (the order of chess-GPT's meta.pkl `stoi`).

  Strict: a character outside the 32 raises, naming it, instead of mapping to an unknown id
  (there is none; a stray character means the text is not a chess-GPT transcript).
  """

  pad_id = 0       # ' ': chess-GPT has no pad token; padded positions carry zero weight.
  eos_id = None    # chess-GPT has no EOS; each game starts with ';', which separates games.
  _LOOKUP = np.full(256, -1, np.int32)
  _LOOKUP[np.frombuffer(CHESS_VOCAB.encode("ascii"), np.uint8)] = np.arange(len(CHESS_VOCAB))

  def __init__(self, extra_ids: int = 0):
    if extra_ids:
      raise ValueError(f"extra_ids={extra_ids}: the 'chess' tokenizer has no sentinel ids (its "
                       "vocabulary is chess-GPT's 32 characters); set config.data.extra_ids=0.")
    super().__init__(0)

  @property
  def base_vocab_size(self) -> int:
    return len(CHESS_VOCAB)

  def encode(self, text: str | bytes) -> np.ndarray:
    data = _as_bytes(text)
    ids = self._LOOKUP[np.frombuffer(data, np.uint8)]
    if (ids < 0).any():
      raw = data.decode("utf-8", errors="replace")
      bad = sorted({c for c in raw if c not in CHESS_VOCAB})
      first = next(i for i, c in enumerate(raw) if c not in CHESS_VOCAB)
      raise ValueError(f"character(s) {bad} (first at index {first} of {raw[:40]!r}...) are not "
                       f"in the chess vocabulary {CHESS_VOCAB!r}; chess-GPT transcripts look "
                       "like ';1.e4 e5 2.Nf3' (SAN moves, no comments, no results).")
    return ids

  def _decode_base(self, ids: Sequence[int]) -> str:
    return "".join(CHESS_VOCAB[int(i)] for i in ids)

  def decode(self, ids: Iterable[int]) -> str:
    """Every id is a character here (pad is ' '), so nothing is dropped."""
    ids = [int(i) for i in ids]
    bad = [i for i in ids if not 0 <= i < len(CHESS_VOCAB)]
    if bad:
      raise ValueError(f"ids {sorted(set(bad))[:10]} are outside the chess vocabulary "
                       f"[0, {len(CHESS_VOCAB)}).")
    return self._decode_base(ids)


class BPETokenizer(Tokenizer):
  """A byte-level BPE in HF's file format, through the `tokenizers` package (lossless).

  `path` is a folder with tokenizer.json, or with vocab.json + merges.txt (GPT-2's ByteLevel
  pre-tokenizer without a prefix space, as GPT-2 and OPT encode). No special tokens are added by
  `encode`; EOS is the vocabulary's '<|endoftext|>' (GPT-2) or '</s>' (OPT), and pads use it too,
  because id 0 is a real token ('!') in these vocabularies.
  """

  EOS_TOKENS = ("<|endoftext|>", "</s>")

  def __init__(self, path: str, extra_ids: int = 0):
    if extra_ids:
      raise ValueError(f"extra_ids={extra_ids}: 'bpe' keeps the checkpoint's vocabulary, so it "
                       "has no sentinel ids; set config.data.extra_ids=0.")
    super().__init__(0)
    try:
      import tokenizers as hf  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError("tokenizer 'bpe:<dir>' needs the 'tokenizers' package (in "
                        "requirements.txt): pip install tokenizers") from e
    self.path = path
    tj = os.path.join(path, "tokenizer.json")
    vocab, merges = (os.path.join(path, f) for f in ("vocab.json", "merges.txt"))
    if os.path.isfile(tj):
      self._tok = hf.Tokenizer.from_file(tj)
      self._tok.post_processor = None   # no BOS/EOS added behind the caller's back
    elif os.path.isfile(vocab) and os.path.isfile(merges):
      self._tok = hf.Tokenizer(hf.models.BPE.from_file(vocab, merges))
      self._tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
      self._tok.decoder = hf.decoders.ByteLevel()
    else:
      raise FileNotFoundError(f"tokenizer 'bpe:{path}': the folder has neither tokenizer.json nor "
                              "vocab.json + merges.txt; pass an HF checkpoint folder (e.g. gpt2 "
                              "or facebook/opt-125m downloaded with its tokenizer files).")
    eos = next((self._tok.token_to_id(t) for t in self.EOS_TOKENS
                if self._tok.token_to_id(t) is not None), None)
    if eos is None:
      raise ValueError(f"tokenizer 'bpe:{path}' has none of {self.EOS_TOKENS} in its vocabulary; "
                       "the LM pipeline needs an end-of-document token.")
    self.eos_id = self.pad_id = int(eos)

  @property
  def base_vocab_size(self) -> int:
    return self._tok.get_vocab_size()

  def encode(self, text: str | bytes) -> np.ndarray:
    return np.asarray(self._tok.encode(_as_str(text), add_special_tokens=False).ids, np.int32)

  def _decode_base(self, ids: Sequence[int]) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


class SentencePieceTokenizer(Tokenizer):
  """A SentencePiece model with pad=0, eos=1 (as `train_sentencepiece` makes them)."""

  def __init__(self, model_path: str, extra_ids: int = 0):
    super().__init__(extra_ids)
    import sentencepiece as spm  # pylint: disable=g-import-not-at-top
    self.model_path = model_path
    with open(model_path, "rb") as f:
      self._sp = spm.SentencePieceProcessor(model_proto=f.read())
    if self._sp.pad_id() != PAD_ID or self._sp.eos_id() != EOS_ID:
      raise ValueError(
          f"SentencePiece model {model_path} has pad_id={self._sp.pad_id()}, "
          f"eos_id={self._sp.eos_id()}; this repo needs pad_id=0, eos_id=1 (train it with "
          "common.data.tokenizers.train_sentencepiece or with those flags).")

  @property
  def base_vocab_size(self) -> int:
    return self._sp.vocab_size()

  def encode(self, text: str | bytes) -> np.ndarray:
    return np.asarray(self._sp.encode(_as_str(text)), np.int32)

  def _decode_base(self, ids: Sequence[int]) -> str:
    return self._sp.decode([int(i) for i in ids])


def train_sentencepiece(texts: Iterable[str], model_path: str, vocab_size: int, *,
                        max_sentences: int = 1_000_000) -> str:
  """Trains a unigram SentencePiece model on `texts` (one document each); returns its path.

  Lossless settings (identity normalisation, whitespace kept, byte fallback) so code and
  odd Unicode round-trip exactly. `vocab_size` is an upper bound: a corpus too small to
  support that many pieces gives fewer. Training is single-threaded and unshuffled, so the same
  texts give the same model on every host. The file is written atomically.
  """
  if vocab_size < MIN_SENTENCEPIECE_VOCAB:
    raise ValueError(f"sentencepiece vocab size {vocab_size} is too small: byte fallback needs "
                     f">= {MIN_SENTENCEPIECE_VOCAB}.")
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top

  def sentences():
    # SentencePiece drops "sentences" longer than max_sentence_length (4 KiB), so feed lines.
    for text in texts:
      for line in text.splitlines():
        if line.strip():
          yield line

  model = io.BytesIO()
  try:
    _train(spm, sentences(), model, vocab_size, max_sentences)
  except RuntimeError as e:
    raise ValueError(f"SentencePiece training of a {vocab_size}-piece model for {model_path} "
                     f"failed (choose another vocab size in config.data.tokenizer or more "
                     f"training documents): {e}") from e
  os.makedirs(os.path.dirname(os.path.abspath(model_path)), exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(model_path)), suffix=".tmp")
  with os.fdopen(fd, "wb") as f:
    f.write(model.getvalue())
  os.replace(tmp, model_path)
  return model_path


def _train(spm, sentences, model, vocab_size, max_sentences):
  spm.SentencePieceTrainer.train(
      sentence_iterator=sentences, model_writer=model, vocab_size=vocab_size,
      model_type="unigram", pad_id=PAD_ID, eos_id=EOS_ID, unk_id=2, bos_id=-1,
      byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
      allow_whitespace_only_pieces=True, split_digits=True, character_coverage=0.9995,
      input_sentence_size=max_sentences, shuffle_input_sentence=False, num_threads=1,
      # A soft limit: a small corpus yields fewer pieces instead of an error (read the real
      # size from `vocab_size`, never from the config string).
      hard_vocab_limit=False, minloglevel=2)


_SPEC = re.compile(r"^sentencepiece:(.+)$")
_BPE_SPEC = re.compile(r"^bpe:(.+)$")
_CACHE: dict[tuple, Tokenizer] = {}
_LOCK = threading.Lock()


def parse_spec(spec: str) -> tuple[str, int | str | None]:
  """('bytes'|'chess', None) | ('sentencepiece', vocab_size:int) | ('sentencepiece', path:str)
  | ('bpe', folder:str)."""
  if spec in ("bytes", "chess"):
    return spec, None
  bpe = _BPE_SPEC.match(spec) if isinstance(spec, str) else None
  if bpe:
    return "bpe", os.path.abspath(os.path.expanduser(bpe.group(1)))
  m = _SPEC.match(spec or "") if isinstance(spec, str) else None
  if not m:
    raise ValueError(f"config.data.tokenizer={spec!r} is not allowed; use 'bytes', 'chess', "
                     "'sentencepiece:<vocab size>', 'sentencepiece:<path to .model>' or "
                     "'bpe:<HF tokenizer folder>'.")
  arg = m.group(1)
  if arg.isdigit():
    return "sentencepiece", int(arg)
  return "sentencepiece", os.path.abspath(os.path.expanduser(arg))


def from_config(data_config) -> Tokenizer:
  """The tokenizer named by `data_config.tokenizer` (trained first if it names a vocab size)."""
  from common.data import config  # pylint: disable=g-import-not-at-top
  data_config = config.resolve(data_config)
  kind, arg = parse_spec(data_config.tokenizer)
  extra_ids = int(data_config.extra_ids)
  if kind == "bytes":
    return ByteTokenizer(extra_ids)
  if kind == "chess":
    return ChessTokenizer(extra_ids)
  if kind == "bpe":
    return bpe_tokenizer(arg, extra_ids)
  if isinstance(arg, str):
    path = arg
  else:
    path = _trained_model_path(data_config, arg)
  return _cached(SentencePieceTokenizer, path, extra_ids)


def bpe_tokenizer(path: str, extra_ids: int = 0) -> BPETokenizer:
  """The (cached) BPETokenizer of an HF tokenizer folder."""
  return _cached(BPETokenizer, os.path.abspath(path), extra_ids)


def _cached(cls: type, path: str, extra_ids: int) -> Tokenizer:
  """One instance per (kind, file, extra_ids): loading a model file is not free, and every data
  worker and evaluator asks for the tokenizer again."""
  key = (cls.__name__, path, extra_ids)
  with _LOCK:
    if key not in _CACHE:
      _CACHE[key] = cls(path, extra_ids)
    return _CACHE[key]


def _trained_model_path(data_config, vocab_size: int) -> str:
  """Path of the locally trained model for this dataset and size; trains it if absent."""
  from common.data import paths  # pylint: disable=g-import-not-at-top
  from common.data import sources  # pylint: disable=g-import-not-at-top
  source, info = sources.open_split(data_config, data_config.train_split)
  dataset_id = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{info.full_name}_{data_config.train_split}")
  max_docs = int(data_config.tokenizer_train_docs)
  path = os.path.join(paths.tokenizer_dir(data_config),
                      f"{dataset_id}_docs{max_docs}_sp{vocab_size}.model")
  if os.path.exists(path):
    return path
  with sources.build_lock(paths.data_dir(data_config), os.path.basename(path)):
    if not os.path.exists(path):
      key = data_config.text_key
      n = min(len(source), max_docs)
      log.info("Training a %d-piece SentencePiece model on %d documents of %s -> %s",
               vocab_size, n, info.full_name, path)
      texts = (sources.as_text(source[i][key]) for i in range(n))
      train_sentencepiece(texts, path, vocab_size)
  return path
