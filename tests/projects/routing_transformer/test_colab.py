"""The Routing Transformer notebook runs end to end at smoke settings: trains 'tiny', plots the
clusters, the centroid usage and the attention maps, and samples bytes."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("routing_transformer",
                      figures=("clusters.png", "usage.png", "attention.png"))
  assert summary["steps"] == 4 and len(summary["train_bits_per_byte"]) == 4
  # Counts recovered from the EMA are the batch's tokens, every step.
  assert summary["counts_per_step"] == [summary["tokens_per_step"]] * 4
  assert abs(sum(summary["final_share"]) - 1) < 1e-6
  assert summary["prompt_kept"] and summary["sample_len"] == 48
  assert summary["local_rows_sum_to_one"]


def test_colab_setting_resolves_without_download(tmp_path, monkeypatch):
  """The notebook's `colab` setting: its config validates, names Wikitext-103 ('tfds:wikitext103',
  prepared in-process only in that setting) and its data builds through common.data from Hub rows,
  here faked, so nothing is downloaded."""
  import pathlib

  import nbformat

  from common.data import sources
  from common.train import config_checks, config_io
  from common.data.builders.wikitext103 import wikitext103
  from projects.routing_transformer import task as task_lib

  root = pathlib.Path(__file__).resolve().parents[3]
  path = "projects/routing_transformer/configs/stdlib_demo.py"
  spec = "colab,routing,sinusoidal"
  notebook = nbformat.read(root / "projects/routing_transformer/colab.ipynb", as_version=4)
  assert f'"{spec}"' in "".join(cell.source for cell in notebook.cells)  # what the notebook runs
  config = config_io.load_config(f"{root / path}:{spec}")
  config_checks.validate(config)
  task_lib.get_task(config).validate(config)
  assert (config.data.name, config.data.tokenizer, config.data.prepare) == (
      "tfds:wikitext103", "bytes", True)
  assert config.model.num_layers > 2 and config.data.seq_len == 2048
  for local in ("tiny", "demo"):  # only the colab setting may download
    assert not config_io.load_config(f"{root / path}:{local}").data.prepare

  rows = ["", " = Alpha = \n", "", " a line \n", " = = Sub = = \n", " more \n", "",
          " = Beta = \n", " b line \n"]
  asked = []
  monkeypatch.setattr(wikitext103.Wikitext103, "ROWS",
                      staticmethod(lambda split: asked.append(split) or rows))
  config.data.data_dir = str(tmp_path)
  source, _ = sources.open_split(config.data, "validation")
  texts = sorted(sources.as_text(source[i]["text"]) for i in range(len(source)))
  # One article per top-level heading; blank rows back as ' \n', subsections kept inside.
  assert texts == [" \n = Alpha = \n \n a line \n = = Sub = = \n more \n \n",
                   " = Beta = \n b line \n"]
  assert sorted(asked) == ["test", "train", "validation"]
