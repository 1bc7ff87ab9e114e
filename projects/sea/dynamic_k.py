"""Dynamic k (paper §4.3): a trained SEA student evaluated at other k, without retraining.

k (`config.model.sea_k`) sets only SEA's per-row top-k budget round(H k T_M / (i + 1)) (or
the 'local' student's window); no parameter has a shape that depends on it. So the run's
latest checkpoint is restored (`trainer.restore_for_eval`, the path of `python -m
common.eval`, which restores onto the shapes the config builds and trains nothing) under a
copy of its config whose sea_k is replaced, and the copy's evaluators are run. Nothing is written into the run's workdir and the
resume guard (run_guards.check_resume, which refuses to *train on* with a changed model) is not
involved: no training step is taken.

  results = evaluate_at_k(config, workdir, ks=(32, 64, 128))  # {k: {'recall/...': value}}

For k = the trained value the results equal the run's own final evaluation.
"""
from __future__ import annotations

import copy
from typing import Sequence

from common.train import trainer


def evaluate_at_k(config, workdir: str, ks: Sequence[int], *,
                  evaluators: Sequence[str] = ("recall",)) -> dict[int, dict[str, float]]:
  """{k: the evaluators' results} for the run in `workdir` evaluated at each sea_k in `ks`.

  Args:
    config: the run's config (e.g. the one it was trained with); only model.sea_k and
      eval.evaluators are changed, on a copy.
    workdir: a run with at least one checkpoint (its latest is evaluated).
    ks: the k values.
    evaluators: names from common.eval.registry ('recall' by default: answer CE / accuracy
      near and far; 'loss' adds the distillation terms and the attention metrics).
  """
  kind = config.model.get("student_attention", "sea")
  if kind == "performer" or config.model.get("sea_layers", "all") in ("none", ""):
    raise ValueError(f"dynamic k needs layers that read k (student_attention 'sea' or 'local' "
                     f"in sea_layers); this config has student_attention={kind!r}, "
                     f"sea_layers={config.model.get('sea_layers')!r}.")
  out = {}
  for k in ks:
    if not isinstance(k, int) or k < 1:
      raise ValueError(f"k={k!r} is not allowed: a positive integer.")
    cfg = copy.deepcopy(config)
    cfg.model.sea_k = k
    cfg.eval.evaluators = tuple(evaluators)
    run, state, _ = trainer.restore_for_eval(cfg, workdir)
    out[k] = trainer.evaluate(run, state)
  return out
