"""The lazy_neuron demo's runs outside the main job and its evaluator choice (training is
mocked: the runs' settings and the rows are what is tested): the size sweep (one run per SWEEP
entry beside the demo's own dense ReLU run, each in its own workdir), the long noisy-label runs
(evaluated at each quarter), and the noisy-label runs skipping the corruption evaluation."""
from projects.lazy_neuron import demo


def _final(nonzero):
  return {"eval/sparsity/test/act_nonzero/mean": nonzero,
          "eval/sparsity/train/act_nonzero/mean": nonzero + 0.01,
          "eval/classification/test/accuracy": 0.5}


def test_size_sweep_trains_each_size_and_seed_once_and_reports_it(monkeypatch, tmp_path):
  seen = []

  def fake_train(config, workdir, **kw):
    seen.append((workdir, config.seed, config.model.width, config.model.depth))
    return _final(0.1 * config.model.width / 64 + 0.01 * config.seed)

  monkeypatch.setattr(demo.demo_runs, "train_or_reuse", fake_train)
  monkeypatch.setattr(demo.metrics_lib, "read_jsonl", lambda path: [])
  rows = demo.size_sweep(str(tmp_path))
  sizes = [(128, 4), (64, 4), (256, 4), (128, 2), (128, 8)]
  assert [(w, d) for _, _, w, d in seen] == [size for size in sizes for _ in demo.SEEDS]
  assert [s for _, s, _, _ in seen] == list(demo.SEEDS) * len(sizes)
  assert len({workdir for workdir, *_ in seen}) == 15
  assert seen[3][0].endswith("sweep_w64_d4_s0")
  assert [r["experiment"].split(" (")[0] for r in rows][1:3] == [
      "ViT ReLU, width 64, depth 4, MLP 256", "ViT ReLU, width 256, depth 4, MLP 1024"]
  assert rows[1]["measured"] == "11.0 ± 1.0% (12.0 ± 1.0%); 50.0 ± 0.0%"


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


def test_long_noise_reports_test_accuracy_by_quarter_and_the_fit_to_the_noise(monkeypatch,
                                                                              tmp_path):
  runs = []

  def fake_train(config, workdir, **kw):
    runs.append((workdir, config.train.num_steps, config.train.eval_every, config.model.top_k))
    return _final(0.4)

  def fake_rows(path):
    acc = 0.9 if "relu_noisy" in path else 0.7      # ReLU fits the noisy batches more
    steps = [r for r in runs if r[0] in path][0][1]
    rows = [{"step": s, "accuracy": acc} for s in range(50, steps + 1, 50)]
    rows += [{"step": s, "eval/classification/test/accuracy": 0.8 - s / 1e4}
             for s in range(steps // 4, steps + 1, steps // 4)]
    return rows

  monkeypatch.setattr(demo.demo_runs, "train_or_reuse", fake_train)
  monkeypatch.setattr(demo.metrics_lib, "read_jsonl", fake_rows)
  rows = demo.long_noise(str(tmp_path))
  long = [r for r in runs if r[1] == demo.NOISE_LONG_STEPS]
  assert len(long) == 6 and {r[2] for r in long} == {demo.NOISE_LONG_STEPS // 4}
  assert {r[3] for r in long} == {0, demo.topk_from_density(0.41, 512)}
  assert rows[0]["metric"].startswith("test accuracy at steps 400 / 800 / 1200 / 1600")
  quarters = "76.0 ± 0.0% / 72.0 ± 0.0% / 68.0 ± 0.0% / 64.0 ± 0.0%"
  assert rows[0]["measured"] == f"{quarters}; {quarters}"
  assert rows[1]["measured"] == "70.0 ± 0.0% / 90.0 ± 0.0%"
