"""The SEA notebook runs end to end at smoke settings and plots true vs estimated attention."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("sea", figures=("attention_maps.png",))
  assert summary["seq_len"] == 64
  assert summary["kl"] > 0 and 0 < summary["kept_fraction"] < 1


def test_colab_setting_resolves_without_download():
  """The notebook's `colab` setting: configs/opt.py:opt-125m,colab validates (task checks
  included), is the official Wikitext-2 recipe shortened, and names what the notebook downloads;
  nothing is fetched here."""
  import pathlib

  import nbformat
  import pytest

  from common.train import config_checks, config_io
  from projects.sea import task as task_lib
  from projects.sea.configs import opt as opt_configs

  root = pathlib.Path(__file__).resolve().parents[3]
  notebook = nbformat.read(root / "projects/sea/colab.ipynb", as_version=4)
  code = "".join(cell.source for cell in notebook.cells)
  assert "configs/opt.py:opt-125m,colab," in code and "snapshot_download" in code
  config = config_io.load_config(f"{root}/projects/sea/configs/opt.py:opt-125m,colab,hf=H,wiki=W")
  config_checks.validate(config)
  task_lib.get_task(config).validate(config)
  official = config_io.load_config(f"{root}/projects/sea/configs/opt.py:opt-125m")
  assert config.model == official.model  # same student and teacher as the paper recipe
  assert (config.data.source, config.data.tokenizer_dir, config.data.manual_dir) == (
      "wikitext2", "H", "W")
  assert (config.eval.strided.source, config.eval.strided.max_length,
          config.eval.strided.stride) == ("wikitext2", 2048, 2048)
  assert config.train.num_steps < official.train.num_steps
  assert config.train.batch_size % config.train.grad_accum_steps == 0
  assert opt_configs.COLAB_HF_REPO == "facebook/opt-125m"
  assert opt_configs.COLAB_WIKITEXT == ("Salesforce/wikitext", "wikitext-2-raw-v1")
  with pytest.raises(ValueError, match="opt-125m only"):
    config_io.load_config(f"{root}/projects/sea/configs/opt.py:opt-1.3b,colab")
