"""The shared converter command line (common/convert_cli.py), with a fake project."""
import json

import numpy as np
import pytest

from common import convert_cli


def _case(tmp_path, atol=1e-5):
  case = tmp_path / "case"
  case.mkdir()
  (case / "config.json").write_text(json.dumps({"atol": atol}))
  for name in ("state_dict.npz", "inputs.npz"):
    np.savez(case / name, x=np.zeros(1))
  np.savez(case / "outputs.npz", logits=np.ones((2, 3)), idx=np.arange(3))
  return case


def _converter(seen, outputs=None, **kw):
  def run_case(case_dir, args):
    seen["case"] = case_dir
    seen["impl"] = getattr(args, "attention_impl", None)
    return outputs if outputs is not None else {"logits": np.ones((2, 3)), "idx": np.arange(3)}

  def to_checkpoint(args):
    seen["ckpt"] = (args.case, getattr(args, "state_dict", None), getattr(args, "preset", None),
                    args.config, args.to_checkpoint)
    return args.to_checkpoint

  def add(p):
    p.add_argument("--attention_impl", default="xla")

  return convert_cli.Converter(prog="convert", description="fake", run_case=run_case,
                               to_checkpoint=to_checkpoint, presets=("P-S", "P-B"),
                               add_arguments=add, **kw)


def test_case_to_out_and_check(tmp_path, capsys):
  case, seen = _case(tmp_path), {}
  out = tmp_path / "sub" / "o.npz"
  assert convert_cli.main(_converter(seen), ["--case", str(case), "--out", str(out),
                                             "--check", "--attention_impl", "pallas_gpu"]) == 0
  assert seen == {"case": str(case), "impl": "pallas_gpu"}
  assert sorted(convert_cli.load_npz(str(out))) == ["idx", "logits"]
  assert "logits: scored error 0.000e+00" in capsys.readouterr().out
  bad = _converter({}, outputs={"logits": np.full((2, 3), 2.0), "idx": np.arange(3)})
  assert convert_cli.main(bad, ["--case", str(case), "--out", str(out), "--check"]) == 1


def test_checkpoint_paths(tmp_path):
  case, seen = _case(tmp_path), {}
  sd = tmp_path / "w.npz"
  np.savez(sd, a=np.zeros(1))
  conv = _converter(seen)
  assert convert_cli.main(conv, ["--case", str(case), "--to_checkpoint", "W"]) == 0
  assert seen["ckpt"] == (str(case), None, None, None, "W")
  assert convert_cli.main(conv, ["--state_dict", str(sd), "--preset", "P-B",
                                 "--to_checkpoint", "W", "--config", "c.py:x"]) == 0
  assert seen["ckpt"] == (None, str(sd), "P-B", "c.py:x", "W")


@pytest.mark.parametrize("argv,message", [
    (["--case", "{tmp}/nope", "--out", "{tmp}/o.npz"], "is not a directory"),
    (["--case", "{tmp}", "--out", "{tmp}/o.npz"], "lacks config.json"),
    (["--case", "{case}", "--out", "{tmp}/o.txt"], "must end with .npz"),
    (["--state_dict", "{tmp}/absent.npz", "--to_checkpoint", "W"], "is not a file"),
])
def test_errors_are_one_line(tmp_path, capsys, argv, message):
  case = _case(tmp_path)
  argv = [a.format(tmp=tmp_path, case=case) for a in argv]
  assert convert_cli.main(_converter({}), argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and message in err and "Traceback" not in err
  with pytest.raises(ValueError, match=message):
    convert_cli.main(_converter({}), argv + ["--traceback"])


@pytest.mark.parametrize("argv", [
    [], ["--out", "o.npz"], ["--case", "c"], ["--state_dict", "w.npz"],
    ["--case", "c", "--state_dict", "w.npz", "--to_checkpoint", "W"],
    ["--case", "c", "--to_checkpoint", "W", "--check"], ["--preset", "P-X"],
])
def test_usage_errors_exit_2(argv):
  with pytest.raises(SystemExit) as info:
    convert_cli.main(_converter({}), argv)
  assert info.value.code == 2


def test_without_checkpoint_support_flags_are_absent():
  conv = convert_cli.Converter(prog="c", description="", run_case=lambda d, a: {})
  with pytest.raises(SystemExit):
    convert_cli.main(conv, ["--state_dict", "w.npz", "--to_checkpoint", "W"])
  hf = convert_cli.Converter(prog="c", description="", run_case=lambda d, a: {},
                             to_checkpoint=lambda a: a.hf, weights="hf")
  assert "--hf" in convert_cli.build_parser(hf).format_help()
