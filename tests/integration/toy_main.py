"""`main.py` of the trainer's toy task, for subprocess tests (multi-process runs, faults).

  python tests/integration/toy_main.py --config common/train/toy_task.py --workdir DIR \
      [--coordinator_address=localhost:PORT --num_processes=2 --process_id=0]

Fault hook (tests only): with TOY_HANG_IN_SAVE_AT=<step>, the save of that step writes
`<workdir>/hanging_in_save` once its temporary directory exists and then sleeps, so that a test
can SIGKILL the process in the middle of a checkpoint save.
"""
import os
import sys
import time

from common.train import main


def _install_save_hook(step: int, workdir: str) -> None:
  import grain
  from common.train import checkpoint
  save_step = {"now": None}
  original_save = checkpoint.Checkpointer.save
  original_handler_save = grain.checkpoint.CheckpointHandler.save

  def save(self, s, *args, **kwargs):
    save_step["now"] = s
    return original_save(self, s, *args, **kwargs)

  def handler_save(self, directory, *args, **kwargs):
    original_handler_save(self, directory, *args, **kwargs)
    if save_step["now"] == step:  # the data item is written inside the step's tmp directory
      with open(os.path.join(workdir, "hanging_in_save"), "w") as f:
        f.write(str(directory))
      time.sleep(600)

  checkpoint.Checkpointer.save = save
  grain.checkpoint.CheckpointHandler.save = handler_save


if __name__ == "__main__":
  if os.environ.get("TOY_HANG_IN_SAVE_AT"):
    workdir = next(a.split("=", 1)[1] for a in sys.argv if a.startswith("--workdir="))
    _install_save_hook(int(os.environ["TOY_HANG_IN_SAVE_AT"]), workdir)
  main.run("toy")
