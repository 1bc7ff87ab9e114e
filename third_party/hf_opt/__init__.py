"""Hugging Face OPT checkpoints (config.json + safetensors) -> projects.sea.opt parameters.

Upstream: huggingface/transformers, `src/transformers/models/opt/modeling_opt.py`
(`OPTForCausalLM`; the key names and tensor layouts of `save_pretrained`), read at commit
ab910744d640b0ed37e2056eb94de31fd4a6979c (the layout is unchanged since transformers 4.32.0,
the version gmlwns2000/sea-attention pins). The OPT weights themselves are Meta's (OPT-175B licence / "other" on the Hub for
facebook/opt-*; the SEA teachers Aalaa/opt-125m-wikitext2 and lnair/opt-*-wikitext2 are
fine-tunes of them). Licence of transformers: Apache-2.0. No code is copied: this package only
reads key names and layouts.

  from third_party.hf_opt import read_checkpoint
  cfg_fields, dense_params = read_checkpoint("/path/to/opt-125m")
"""
from third_party.hf_opt.checkpoint import (
    config_fields, convert_tensors, read_checkpoint, read_config, read_tensors)

__all__ = ["config_fields", "convert_tensors", "read_checkpoint", "read_config", "read_tensors"]
