"""The MoE-X notebook runs end to end at smoke settings: trains 'tiny', plots expert load and the
score-vs-L0 scatter, prints an expert's contexts and draws a unit's board-state heat map."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("moex", figures=("routing.png", "board_map.png"))
  assert abs(sum(summary["load"]) - 1.0) < 1e-6 and len(summary["load"]) == 8
  assert -1.0 <= summary["score_l0_r"] <= 1.0
  assert len(summary["contexts"]) == 3
  assert 0 <= summary["board"]["coverage"] <= 1 and 0 <= summary["board"]["reconstruction"] <= 1
