"""benchmarks/harness.py: a benchmark script never times another checkout's code."""
import subprocess
import sys

from benchmarks import harness


def test_a_script_of_another_checkout_stops_with_the_fix(tmp_path):
  # A checkout whose benchmarks/ holds a script but whose packages are not on sys.path: its
  # `from benchmarks import harness` finds this checkout (the editable install), as a git
  # worktree's script run as `python benchmarks/X.py` does.
  script = tmp_path / "benchmarks" / "probe.py"
  script.parent.mkdir()
  script.write_text("from benchmarks import harness\nprint('timed', harness.ROOT)\n")
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                        cwd=tmp_path, env=harness.repo_env(), check=False)
  assert proc.returncode == 1 and "timed" not in proc.stdout
  assert f"PYTHONPATH={tmp_path.resolve()}" in proc.stderr
  assert str(harness.ROOT) in proc.stderr

  # The same script with its own checkout first passes the check (and imports from there).
  (tmp_path / "benchmarks" / "__init__.py").write_text("")
  (tmp_path / "benchmarks" / "harness.py").write_text(
      (harness.ROOT / "benchmarks" / "harness.py").read_text())
  env = dict(harness.repo_env(), PYTHONPATH=str(tmp_path))
  proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                        cwd=tmp_path, env=env, check=False)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == f"timed {tmp_path.resolve()}"
