"""The main job's driver: rows of every demo, a failed demo marked without hiding the others, and
each demo's wall time with the total; the command line of the modes outside it."""
import json
import sys
import types

import pytest

from projects import run_demos


def _demo(run):
  module = types.ModuleType("demo")
  module.run = run
  return module


def test_rows_failures_and_wall_times(tmp_path, monkeypatch):
  row = dict(project="fake", experiment="e", metric="m", paper="p", measured="1")
  monkeypatch.setitem(sys.modules, "projects.fake.demo", _demo(lambda out, quick: [row]))

  def broken(out, quick):
    raise RuntimeError("boom")

  monkeypatch.setitem(sys.modules, "projects.broken.demo", _demo(broken))
  rc = run_demos.main(["--only", "fake,broken", "--out", str(tmp_path), "--xla_cache", ""])
  assert rc == 1
  md = (tmp_path / "demo_results.md").read_text()
  assert "| fake | e | m | p | 1 |" in md
  assert "| broken | demo | status |  | FAILED (see log) |" in md
  assert "| fake |" in md.split("| demo | wall time |")[1] and "| total |" in md
  saved = json.loads((tmp_path / "demo_results.json").read_text())
  assert [r["project"] for r in saved["rows"]] == ["fake", "broken"]
  assert list(saved["seconds"]) == ["fake", "broken"] and min(saved["seconds"].values()) >= 0


def test_run_mode_passes_quick_and_steps_only_when_given(capsys):
  calls = []

  def mode(out, *, quick, steps=7):
    calls.append((out, quick, steps))
    return [dict(project="p", experiment="e", metric="m", paper="x", measured=str(steps))]

  run_demos.run_mode("d", {"long": mode}, steps=True, argv=["long", "/o", "--quick"])
  run_demos.run_mode("d", {"long": mode}, steps=True, argv=["long", "/o", "--steps", "3"])
  assert calls == [("/o", True, 7), ("/o", False, 3)]
  assert "| p | e | m | x | 3 |" in capsys.readouterr().out
  with pytest.raises(SystemExit):   # a mode without steps offers no --steps
    run_demos.run_mode("d", {"long": mode}, argv=["long", "/o", "--steps", "3"])
