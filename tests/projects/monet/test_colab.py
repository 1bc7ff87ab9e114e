"""The Monet notebook runs end to end at smoke settings: trains 'tiny' on the code / prose / chess
corpus, plots routing statistics, prints expert examples and the masking result."""


def test_colab_notebook_executes(run_colab):
  summary = run_colab("monet", figures=("routing_mass.png", "masking.png"))
  assert [r["target"] for r in summary["masking"]] == ["python", "prose", "chess"]
  assert set(summary["examples"]) == {"python", "prose", "chess"}
  assert all(len(e["contexts"]) == 3 for e in summary["examples"].values())
