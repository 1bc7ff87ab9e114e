"""Demo runs are reused once finished, and exports are redone only when no checkpoint exists."""
from common.train import demo_runs, toy_task, trainer


def test_finished_runs_and_exports_are_reused(tmp_path, monkeypatch):
  config = toy_task.get_config()
  config.train.num_steps = config.train.checkpoint_every = 2
  workdir = str(tmp_path / "run")
  first = demo_runs.train_or_reuse(config, workdir, task=toy_task.ToyTask(config))
  assert first["step"] == 2

  def fail(*args, **kwargs):
    raise AssertionError("a finished run was trained again")
  monkeypatch.setattr(trainer, "train", fail)
  assert demo_runs.train_or_reuse(config, workdir) == first

  calls = []
  demo_runs.export_once(workdir, lambda: calls.append("finished"))   # has step 2: skipped
  (tmp_path / "interrupted" / "checkpoints").mkdir(parents=True)     # no finished step
  demo_runs.export_once(str(tmp_path / "interrupted"), lambda: calls.append("interrupted"))
  assert calls == ["interrupted"]
