"""The SEA notebook runs end to end at smoke settings and plots true vs estimated attention."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("sea", figures=("attention_maps.png",))
  assert summary["seq_len"] == 64
  assert summary["kl"] > 0 and 0 < summary["kept_fraction"] < 1
