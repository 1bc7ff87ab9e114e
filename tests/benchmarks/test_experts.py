"""benchmarks/experts.py times every expert layer and both dense baselines at tiny shapes."""
from benchmarks import experts


def test_every_layer_is_timed_interleaved(tmp_path):
  out = tmp_path / "experts.md"
  text = experts.main(["--tokens", "64", "--d", "16", "--experts", "4", "--moe_dim", "4",
                       "--heads", "2", "--topk", "2", "--moe_experts", "4", "--repeats", "2",
                       "--sizes", "16x8,32x8", "--out", str(out)])
  assert out.read_text() == text
  table, sizes = text.split("| d x expert width")
  rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")][1:]
  names = [r[0].strip() for r in rows]
  assert len(names) == 10 and names[0] == "Monet HD" and names[-1].startswith("dense relu2")
  assert sum("dropless" in n for n in names) == 2
  # Every layer ran: positive throughputs, and the active-width dense MLP is its own 1.0x.
  assert all(float(r[2].replace(",", "")) > 0 and float(r[3].replace(",", "")) > 0 for r in rows)
  assert rows[-2][4].strip() == rows[-2][5].strip() == "1.0x"
  # The size table: one row per size, dropless Switch and MoE-X relative to their dense MLP.
  size_rows = [line.split("|")[1:-1] for line in sizes.splitlines() if line.startswith("| ")]
  assert [r[0].strip() for r in size_rows] == ["16 x 8", "32 x 8"]
  assert all(r[1].strip() == "16" for r in size_rows)   # top-2 of 8-wide experts
  assert all(float(c.strip().rstrip("x")) > 0 for r in size_rows for c in r[3:])
