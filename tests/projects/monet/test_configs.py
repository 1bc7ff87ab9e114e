"""configs/domains_demo.py's sizes: `demo` stays the README's runs; `colab` is the bigger Monet-VD
on 'text_domains_colab' that the notebook trains on a Colab GPU."""
from common.data import builders
from common.train import config_io
from projects.monet import config as config_lib

CONFIG = "projects/monet/configs/domains_demo.py"


def test_colab_size_data_and_parameters():
  config = config_io.load_config(f"{CONFIG}:colab")
  cfg = config_lib.from_config(config.model)
  assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.moe_experts,
          cfg.moe_topk, cfg.moe_dim, cfg.moe_heads, cfg.moe_groups, cfg.moe_decompose) == (
              6, 384, 6, 64, 8, 16, 4, 2, "vertical")
  assert config.model.unif_weight == config.model.amb_weight == 1e-3   # the paper's
  assert (config.data.name, config.data.tokenizer, config.data.seq_len) == (
      "text_domains_colab", "bytes", 512)
  assert cfg.max_position_embeddings >= config.data.seq_len
  assert builders.get(config.data.name).kind == "text"
  assert (config.train.batch_size, config.train.num_steps) == (32, 3000)
  # The docstring's 9.2M parameters (its time estimate rests on them); dense matches it.
  total = config_lib.count_params(cfg)["total_params"]
  assert 9.1e6 < total < 9.3e6
  dense = config_lib.from_config(config_io.load_config(f"{CONFIG}:colab,dense").model)
  assert abs(config_lib.count_params(dense)["total_params"] - total) < 6 * (2 * 384 + 1)


def test_demo_size_is_unchanged():
  config = config_io.load_config(f"{CONFIG}:demo,seed=1")
  cfg = config_lib.from_config(config.model)
  assert (config.data.name, config.data.seq_len, config.train.batch_size,
          config.train.num_steps, config.seed) == ("text_domains", 128, 16, 300, 1)
  assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.moe_experts, cfg.moe_topk) == (2, 64, 32, 4)
