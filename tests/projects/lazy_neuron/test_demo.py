"""The lazy_neuron demo's size sweep: one run per SWEEP entry beside the demo's own dense ReLU
run, each at its width and depth and in its own workdir, one row each; the noisy-label runs of
the demo skip the corruption evaluation (training is mocked: the rows are what is tested)."""
from projects.lazy_neuron import demo


def _final(nonzero):
  return {"eval/sparsity/test/act_nonzero/mean": nonzero,
          "eval/sparsity/train/act_nonzero/mean": nonzero + 0.01,
          "eval/classification/test/accuracy": 0.5}


def test_size_sweep_trains_each_size_once_and_reports_it(monkeypatch, tmp_path):
  seen = []

  def fake_train(config, workdir, **kw):
    seen.append((workdir, config.model.width, config.model.depth,
                 tuple(config.eval.evaluators)))
    return _final(0.1 * len(seen))

  monkeypatch.setattr(demo.demo_runs, "train_or_reuse", fake_train)
  monkeypatch.setattr(demo.metrics_lib, "read_jsonl", lambda path: [])
  rows = demo.size_sweep(str(tmp_path))
  assert [(w, d) for _, w, d, _ in seen] == [(128, 4), (64, 4), (256, 4), (128, 2), (128, 8)]
  assert len({workdir for workdir, *_ in seen}) == 5
  assert seen[1][0].endswith("sweep_w64_d4")
  assert [r["experiment"].split(" (")[0] for r in rows][1:3] == [
      "ViT ReLU, width 64, depth 4, MLP 256", "ViT ReLU, width 256, depth 4, MLP 1024"]
  assert rows[2]["measured"] == "30.0% (31.0%); 50.0%"


def test_noisy_label_runs_skip_the_corruptions(monkeypatch, tmp_path):
  evaluators = {}
  monkeypatch.setattr(demo.demo_runs, "train_or_reuse",
                      lambda config, workdir: evaluators.update(
                          {workdir: config.eval.evaluators}) or _final(0.4))
  monkeypatch.setattr(demo.metrics_lib, "read_jsonl", lambda path: [])
  demo._train("vit_relu_noisy", str(tmp_path), quick=True)
  demo._train("vit_relu", str(tmp_path), quick=True)
  noisy, clean = evaluators.values()
  assert "robustness" in clean and "robustness" not in noisy
