"""The project's notebook runs end to end at smoke settings and produces its figures; its Colab
setting validates without its data."""
import pathlib


def test_colab_notebook_executes(run_colab, tmp_path):
  # One CPU device in the kernel: the notebook shards nothing, and 8 forced devices would
  # only make its compiles slower.
  summary = run_colab("sparse_jepa", figures=("masks.png", "training_curves.png", "probes.png"),
                      single_device=True)
  assert set(summary["probes"]) == {"ijepa", "sparse_jepa"}
  for values in summary["probes"].values():
    assert 0.0 <= values["linear-probe accuracy"] <= 1.0
  assert 0.0 <= summary["latent_sparsity"]["active_units"] <= 1.0
  for run in ("ijepa", "sparse_jepa"):
    assert (tmp_path / "runs" / run / "metrics.jsonl").exists()


def test_colab_setting_is_cifar100_and_opens_no_data(monkeypatch):
  """The notebook's 'colab' scale: configs/mnist_demo.py:{ijepa,sparse},colab validate (task
  checks included) and build abstractly without touching the data; only that setting downloads
  (CIFAR-100, prepared by TFDS on first use), and the notebook switches to it."""
  import nbformat  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from common.data import sources  # pylint: disable=g-import-not-at-top
  from common.train import config_checks  # pylint: disable=g-import-not-at-top
  from projects.sparse_jepa import demo, task  # pylint: disable=g-import-not-at-top

  def no_download(*_):
    raise AssertionError("the colab setting's check must not open or download its dataset")
  monkeypatch.setattr(sources, "_prepared_tfds_builder", no_download)
  notebook = pathlib.Path(__file__).resolve().parents[3] / "projects/sparse_jepa/colab.ipynb"
  code = "".join(c.source for c in nbformat.read(notebook, as_version=4).cells)
  assert '"colab": "colab"' in code and "size=SIZE" in code
  for run in ("ijepa", "sparse_jepa"):
    config = demo.config_for(run, quick=False, size="colab")
    config_checks.validate(config)
    t = task.get_task(config)
    t.validate(config)
    assert (config.data.name, config.data.prepare, config.data.image_size,
            config.data.num_classes) == ("tfds:cifar100", True, 32, 100)
    assert config.model.sparse == (run == "sparse_jepa")
    nnx.eval_shape(lambda: t.build_model(nnx.Rngs(0)))  # pylint: disable=cell-var-from-loop
    assert not demo.config_for(run, quick=False).data.get("prepare", False)
