"""The project's notebook runs end to end at smoke settings and produces its figures."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("lazy_neuron", figures=("sparsity_over_training.png",
                                               "calibration_robustness.png"))
  assert set(summary) == {"relu", "topk", "gelu"}
  # The top-k run keeps at most k of d_ff activations per token.
  assert summary["topk"]["act_nonzero"] <= summary["relu"]["act_nonzero"]


def test_colab_setting_resolves_without_download(monkeypatch):
  """The notebook's `colab` setting: configs/vit_mnist.py:colab,{relu,topk,gelu} validates (task
  checks included) without touching the data, names the downloadable CIFAR-10 ('tfds:cifar10',
  prepared in-process only in that setting) and is the demo's comparison, larger."""
  import pathlib

  import nbformat

  from common.data import sources
  from common.train import config_checks, config_io
  from projects.lazy_neuron import task as task_lib

  def no_download(*_):
    raise AssertionError("the colab setting's check must not open or download its dataset")
  monkeypatch.setattr(sources, "_prepared_tfds_builder", no_download)

  root = pathlib.Path(__file__).resolve().parents[3]
  path = root / "projects/lazy_neuron/configs/vit_mnist.py"
  code = "".join(cell.source for cell in nbformat.read(root / "projects/lazy_neuron/colab.ipynb",
                                                        as_version=4).cells)
  assert '"colab": "colab"' in code and 'f"{SIZE},topk{STEPS}"' in code
  for mlp in ("relu", "topk", "gelu"):
    config = config_io.load_config(f"{path}:colab,{mlp}")
    config_checks.validate(config)
    task_lib.get_task(config).validate(config)
    demo = config_io.load_config(f"{path}:demo,{mlp}")
    assert (config.data.name, config.data.prepare, config.data.num_classes) == (
        "tfds:cifar10", True, 10)
    assert config.model.mlp_activation == demo.model.mlp_activation
    assert config.model.width > demo.model.width and config.model.depth > demo.model.depth
    assert config.train.num_steps > demo.train.num_steps
    assert config.eval.evaluators == demo.eval.evaluators
    assert not demo.data.get("prepare", False)  # only the colab setting may download
    assert not config_io.load_config(f"{path}:tiny,{mlp}").data.get("prepare", False)
  assert config_io.load_config(f"{path}:colab,topk").model.top_k == 1024 // 24
