"""Tokenizers: byte round trip, sentinel layout, SentencePiece training and config parsing."""
import os

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

from common.data import checks
from common.data import config
from common.data import tokenizers


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_byte_tokenizer_round_trip(text):
  tok = tokenizers.ByteTokenizer()
  ids = tok.encode(text)
  assert ids.dtype == np.int32
  assert len(ids) == len(text.encode("utf-8"))
  assert ids.min(initial=2) >= 2 and ids.max(initial=257) <= 257
  assert tok.decode(ids) == text
  assert tok.decode(np.concatenate([ids, [tok.eos_id, tok.pad_id, tok.pad_id]])) == text


def test_byte_tokenizer_ids_and_sentinels():
  tok = tokenizers.ByteTokenizer(extra_ids=3)
  assert (tok.pad_id, tok.eos_id) == (0, 1)
  assert list(tok.encode(b"\x00A\xff")) == [2, 67, 257]
  assert tok.vocab_size == 261
  assert [tok.sentinel_id(i) for i in range(3)] == [260, 259, 258]
  assert tok.decode([67, 260, 68, 258]) == "A<extra_id_0>B<extra_id_2>"
  with pytest.raises(ValueError, match="extra_ids=3"):
    tok.sentinel_id(3)


def test_sentencepiece_train_round_trip_and_specials(tmp_path):
  texts = [f"def function_{i}(x, y):\n    return x * {i} + y  # résumé ☃\n" for i in range(200)]
  path = tokenizers.train_sentencepiece(texts, str(tmp_path / "sp.model"), 400)
  tok = tokenizers.SentencePieceTokenizer(path, extra_ids=2)
  assert (tok.pad_id, tok.eos_id) == (0, 1)
  assert tok.vocab_size == tok.base_vocab_size + 2 <= 402
  sample = "def f(x):\n\treturn x  # never seen: 𝔘 ü\n"
  ids = tok.encode(sample)
  assert ids.dtype == np.int32 and 0 not in ids and 1 not in ids
  assert tok.decode(ids) == sample  # identity normalisation + byte fallback: lossless
  assert tok.sentinel_id(0) == tok.vocab_size - 1


def test_sentencepiece_from_config_trains_once(text_config):
  cfg = text_config(tokenizer="sentencepiece:400", tokenizer_train_docs=3)
  tok = tokenizers.from_config(cfg)
  assert os.path.dirname(tok.model_path).endswith("tokenizers")
  assert tokenizers.from_config(cfg) is tok
  mtime = os.path.getmtime(tok.model_path)
  tokenizers._CACHE.clear()  # pylint: disable=protected-access
  assert tokenizers.from_config(cfg).model_path == tok.model_path
  assert os.path.getmtime(tok.model_path) == mtime


@pytest.mark.parametrize("spec", ["byte", "sentencepiece:", "sp:32000", ""])
def test_bad_tokenizer_spec(spec):
  with pytest.raises(ValueError, match="config.data.tokenizer"):
    tokenizers.parse_spec(spec)


def test_parse_spec():
  assert tokenizers.parse_spec("bytes") == ("bytes", None)
  assert tokenizers.parse_spec("sentencepiece:32000") == ("sentencepiece", 32000)
  kind, path = tokenizers.parse_spec("sentencepiece:~/m.model")
  assert kind == "sentencepiece" and path == os.path.expanduser("~/m.model")


def _byte_level_alphabet() -> list[str]:
  """GPT-2's byte -> printable-unicode table (the ByteLevel pre-tokenizer's symbols)."""
  keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
  chars, extra = {}, 0
  for b in range(256):
    if b in keep:
      chars[b] = chr(b)
    else:
      chars[b] = chr(256 + extra)
      extra += 1
  return [chars[b] for b in range(256)]


def test_bpe_tokenizer_from_vocab_and_merges(tmp_path):
  import json
  symbols = _byte_level_alphabet()
  vocab = {s: i for i, s in enumerate(symbols)}
  vocab.update({"he": 256, "hel": 257, "Ġw": 258, "<|endoftext|>": 259})
  (tmp_path / "vocab.json").write_text(json.dumps(vocab))
  (tmp_path / "merges.txt").write_text("#version: 0.2\nh e\nhe l\nĠ w\n")
  tok = tokenizers.from_config(config.text_data_config(tokenizer=f"bpe:{tmp_path}"))
  assert isinstance(tok, tokenizers.BPETokenizer) and tok.vocab_size == 260
  assert tok.eos_id == tok.pad_id == 259
  text = "hello world!\n\tü"
  ids = tok.encode(text)
  assert ids[:2].tolist() == [257, vocab["l"]] and 258 in ids.tolist()   # merges applied
  assert tok.decode(ids) == text and tok.decode(list(ids) + [259]) == text
  assert tok.decode([0]) == "\x00"   # id 0 is a real token here (GPT-2: "!"), not padding
  with pytest.raises(ValueError, match="an existing folder with tokenizer.json"):
    checks.validate(config.text_data_config(tokenizer=f"bpe:{tmp_path / 'missing'}"))
  with pytest.raises(FileNotFoundError, match="neither tokenizer.json nor"):
    tokenizers.BPETokenizer(str(tmp_path / "nothing"))
