"""The project's notebook runs end to end at smoke settings and produces its figures."""


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
