"""benchmarks/device_check.py in its CPU dry run: the table it writes, and that it can FAIL.

The dry run compiles every case's Pallas GPU bodies under the HLO interpreter, so it is run once
for all its cases (~20 s on 2 cores) and once more for a single case without timings.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from benchmarks import device_check
from common.kernels.block_sparse_attention import block_sparse_attention_reference


def _rows(text):
  """{column: cell} per row of the markdown table in `text`."""
  lines = text.splitlines()
  start = next(i for i, line in enumerate(lines) if line.startswith("| op |"))
  header = [c.strip() for c in lines[start].strip("|").split("|")]
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    rows.append(dict(zip(header, (c.strip() for c in line.strip("|").split("|")))))
  return rows


def test_dry_run_passes_every_case_within_tolerance(tmp_path):
  out = tmp_path / "check.md"
  assert device_check.main(["--dry_run", "--out", str(out)]) == 0
  rows = _rows(out.read_text())
  cases = device_check.all_cases(dry_run=True)
  assert [(r["op"], r["feature"], r["dtype"]) for r in rows] == [
      (c.op, c.feature, c.dtype) for c in cases]
  for row in rows:
    assert row["check"] == "PASS", row
    tol = device_check.TOLERANCES[row["dtype"]]
    assert float(row["err o"]) <= tol["out"], row
    for name in ("err dq", "err dk", "err dv"):
      assert float(row[name]) <= tol["grad"], row
    if "rel" in row["feature"]:
      assert float(row["err d_rel"]) <= tol["grad"], row
    assert row["vs"] == "reference"
    # Timed, and reported as 'ms (TFLOP/s)'.
    assert row["cand fwd+bwd"].endswith(")") and row["xla fwd"].endswith(")"), row
    assert row["cudnn fwd"] == ("n/a" if row["op"] == "block" else "-"), row


def test_wrong_kernel_output_is_reported_as_fail(tmp_path, monkeypatch):
  real = device_check.candidate

  def off_by_one(case, cfg, impl):
    attend = real(case, cfg, impl)
    return lambda *args: attend(*args) + 1.0

  monkeypatch.setattr(device_check, "candidate", off_by_one)
  out = tmp_path / "check.md"
  code = device_check.main(["--dry_run", "--only", "row T=256 D=64 f32", "--skip_timing",
                            "--out", str(out)])
  assert code == 1
  text = out.read_text()
  (row,) = _rows(text)
  assert row["check"] == "FAIL"
  assert float(row["err o"]) > device_check.TOLERANCES["f32"]["out"]
  # A constant shift of o leaves the gradients of sum(o * w) unchanged.
  assert float(row["err dq"]) <= device_check.TOLERANCES["f32"]["grad"]
  assert "0 of 1 cases PASS; FAIL: row T=256 D=64 f32 base." in text


def test_cudnn_column_times_dense_causal_attention():
  # cuDNN needs a GPU; XLA's dense attention stands in to check the wrapper's [B, T, N, D]
  # layout, causal mask and GQA against the block op's reference with every block listed.
  case = device_check.Case("block", 64, 16, "f32", heads=2, heads_kv=1)
  cfg = device_check.settings(device_check.parse_args(["--dry_run", "--block", "16"]))
  q, k, v, _, _, _ = device_check.make_inputs(case, cfg)
  q_t, k_t, v_t = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
  dense = device_check.forward_only(device_check.cudnn_fn(case, cfg, impl="xla"))
  got = dense(q_t, k_t, v_t, (), {}, None).transpose(0, 2, 1, 3)
  every_block = jnp.broadcast_to(jnp.arange(4, dtype=jnp.int32), (1, 2, 4, 4))
  want = block_sparse_attention_reference(q, k, v, every_block, block_q=16, block_k=16,
                                          causal=True)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
