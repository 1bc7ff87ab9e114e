"""benchmarks/experts.py times every expert layer and both dense baselines at tiny shapes."""
from benchmarks import experts


def test_every_layer_is_timed_interleaved(tmp_path):
  out = tmp_path / "experts.md"
  text = experts.main(["--tokens", "64", "--d", "16", "--experts", "4", "--moe_dim", "4",
                       "--heads", "2", "--topk", "2", "--moe_experts", "4", "--repeats", "2",
                       "--out", str(out)])
  assert out.read_text() == text
  rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ")][1:]
  names = [r[0].strip() for r in rows]
  assert len(names) == 10 and names[0] == "Monet HD" and names[-1].startswith("dense relu2")
  assert sum("dropless" in n for n in names) == 2
  # Every layer ran: positive throughputs, and the active-width dense MLP is its own 1.0x.
  assert all(float(r[2].replace(",", "")) > 0 and float(r[3].replace(",", "")) > 0 for r in rows)
  assert rows[-2][4].strip() == rows[-2][5].strip() == "1.0x"
