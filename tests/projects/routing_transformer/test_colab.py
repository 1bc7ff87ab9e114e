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
