"""The main job's driver: rows of every demo, a failed demo marked without hiding the others, and
each demo's wall time with the total; demos at once in pinned worker processes, longest first;
the command line of the modes outside it."""
import json
import os
import sys
import textwrap
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
  rc = run_demos.main(["--only", "fake,broken", "--out", str(tmp_path), "--xla_cache", "",
                       "--jobs", "1"])
  assert rc == 1
  md = (tmp_path / "demo_results.md").read_text()
  assert "| fake | e | m | p | 1 |" in md
  assert "| broken | demo | status |  | FAILED (see log) |" in md
  assert "| fake |" in md.split("| demo | wall time |")[1] and "| total |" in md
  saved = json.loads((tmp_path / "demo_results.json").read_text())
  assert [r["project"] for r in saved["rows"]] == ["fake", "broken"]
  assert list(saved["seconds"]) == ["fake", "broken"] and min(saved["seconds"].values()) >= 0


def test_a_lane_worker_pins_itself_and_writes_its_rows_instead_of_the_table(tmp_path,
                                                                              monkeypatch):
  pinned = []
  monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: pinned.append((pid, cpus)))
  row = dict(project="fake", experiment="e", metric="m", paper="p", measured="1")
  monkeypatch.setitem(sys.modules, "projects.fake.demo",
                      _demo(lambda out, quick: [dict(row, measured=str(pinned))]))
  rows_json = tmp_path / "fake.rows.json"
  command = run_demos.worker_command("fake", str(tmp_path), False, "", str(rows_json), {1, 3})
  assert command[:3] == [sys.executable, "-m", "projects.run_demos"]
  assert run_demos.main(command[3:]) == 0
  assert json.loads(rows_json.read_text())["rows"] == [dict(row, measured="[(0, {1, 3})]")]
  assert not (tmp_path / "demo_results.md").exists()


def test_cpu_lanes_split_the_allowed_cpus(monkeypatch):
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 5, 6})
  assert run_demos.cpu_lanes(2) == [{0, 1, 2}, {5, 6}]
  assert run_demos.cpu_lanes(9) == [{0}, {1}, {2}, {5}, {6}]
  assert run_demos.cpu_lanes(1) == [{0, 1, 2, 5, 6}]


# A stand-in for a lane's worker: says hello, reports the CPUs it was given as its row, and
# (demo 'broken') dies without rows.
_WORKER = textwrap.dedent("""
    import json, sys
    name, rows_json, cpus = sys.argv[1:]
    print("hello from", name)
    if name == "broken":
      sys.exit(3)
    row = dict(project=name, experiment="e", metric="cpus", paper="", measured=cpus)
    json.dump(dict(rows=[row], seconds={name: 0.0}), open(rows_json, "w"))
""")


def test_demos_run_at_once_in_worker_processes_longest_first(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(run_demos, "cpu_lanes", lambda jobs: [{0, 1}, {2}][:jobs])
  monkeypatch.setattr(run_demos, "accelerator_backend", lambda: None)
  monkeypatch.setattr(run_demos, "expected_minutes", {"a": 1.0, "broken": 3.0, "c": 2.0}.get)

  def worker(name, out, quick, cache, rows_json, cpus):
    return [sys.executable, "-c", _WORKER, name, rows_json, str(sorted(cpus))]

  monkeypatch.setattr(run_demos, "worker_command", worker)
  rc = run_demos.main(["--only", "a,broken,c", "--out", str(tmp_path), "--xla_cache", "",
                       "--jobs", "2"])
  assert rc == 1
  saved = json.loads((tmp_path / "demo_results.json").read_text())
  assert saved["rows"][1] == run_demos._failed_row("broken")
  assert {saved["rows"][0]["measured"], saved["rows"][2]["measured"]} <= {"[0, 1]", "[2]"}
  assert list(saved["seconds"]) == ["a", "broken", "c"]
  assert "hello from broken" in (tmp_path / "broken.log").read_text()
  out = capsys.readouterr().out
  started = [line.split(":")[0] for line in out.splitlines() if ": demo, on CPUs" in line]
  assert started[-1] == "=== a"   # the shortest waits for a free lane
  assert "| sum of the demos (they ran at once) |" in (tmp_path / "demo_results.md").read_text()


def test_an_accelerator_host_runs_one_demo_at_a_time(tmp_path, monkeypatch, capsys):
  assert run_demos.accelerator_backend() is None   # this suite runs on the CPU
  monkeypatch.setattr(run_demos, "cpu_lanes", lambda jobs: [{0}, {1}][:jobs])
  monkeypatch.setattr(run_demos, "accelerator_backend", lambda: "tpu")
  for name in ("x", "y"):
    row = dict(project=name, experiment="e", metric="m", paper="p", measured="1")
    monkeypatch.setitem(sys.modules, f"projects.{name}.demo",
                        _demo(lambda out, quick, row=row: [row]))   # in this process only
  assert run_demos.main(["--only", "x,y", "--out", str(tmp_path), "--xla_cache", ""]) == 0
  assert "one demo at a time: jax's backend here is tpu" in capsys.readouterr().out
  assert [r["project"] for r in json.loads((tmp_path / "demo_results.json").read_text())["rows"]
          ] == ["x", "y"]


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
