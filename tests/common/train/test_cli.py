"""The CLI every projects/<name>/main.py shares: --help lists the flags and exits 0, and a user's
mistake (a misspelled override, no checkpoint to evaluate) is one line and exit code 2."""
import subprocess
import sys

import pytest

from tests.integration.launch import REPO, cpu_env, toy_command


def _run(args):
  proc = subprocess.run(args, env=cpu_env(8), capture_output=True, text=True, timeout=300)
  return proc.returncode, proc.stdout, proc.stderr


def test_help_lists_the_main_flags_and_exits_0():
  rc, out, _ = _run([sys.executable, str(REPO / "projects" / "svit" / "main.py"), "--help"])
  assert rc == 0
  for flag in ("--config:", "--workdir:", "--mode:", "--[no]restore_fallback:",
               "--[no]start_fresh:", "--[no]traceback:", "--checkpoint_step:"):
    assert flag in out, flag


@pytest.mark.parametrize("extra, expected", [
    (["--config.model.hiden=3"],
     "--config.model.hiden=3: the config has no field 'config.model.hiden'; did you mean 'hidden'?"),
    (["--mode=eval"], "no checkpoint in"),
])
def test_a_mistake_is_one_line_and_traceback_on_request(tmp_path, extra, expected):
  rc, out, err = _run(toy_command(str(tmp_path), *extra))
  lines = [line for line in (out + err).splitlines() if line.startswith("error:")]
  assert rc == 2 and len(lines) == 1 and expected in lines[0], (out + err)[-3000:]
  assert "Traceback" not in out + err
  rc, out, err = _run(toy_command(str(tmp_path), *extra, "--traceback"))
  assert rc != 0 and "Traceback" in err
