"""The project's notebook runs end to end at smoke settings and produces its figures."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("lazy_neuron", figures=("sparsity_over_training.png",
                                               "calibration_robustness.png"))
  assert set(summary) == {"relu", "topk", "gelu"}
  # The top-k run keeps at most k of d_ff activations per token.
  assert summary["topk"]["act_nonzero"] <= summary["relu"]["act_nonzero"]
