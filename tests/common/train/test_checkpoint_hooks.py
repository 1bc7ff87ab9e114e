"""The unraisable-exception filter a checkpoint restore installs (checkpoint._orphaned_read_callback)."""
import asyncio
import sys
import types

from common.train import checkpoint


def _unraisable(error: BaseException):
  """What Python hands sys.unraisablehook (its args type is not importable)."""
  return types.SimpleNamespace(exc_type=type(error), exc_value=error,
                               exc_traceback=error.__traceback__, err_msg=None, object=None)


def test_only_reads_completing_into_a_closed_loop_are_dropped(monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  checkpoint._drop_orphaned_read_callbacks()
  hook = sys.unraisablehook
  checkpoint._drop_orphaned_read_callbacks()  # once per process: no second wrapper
  assert sys.unraisablehook is hook and hook is not seen.append

  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(lambda: None)
  except RuntimeError as e:
    orphan = e
  hook(_unraisable(orphan))
  assert seen == []
  # The same message from anywhere else, and any other error, still reach the previous hook.
  try:
    raise RuntimeError("Event loop is closed")
  except RuntimeError as e:
    elsewhere = e
  other = ValueError("something else")
  hook(_unraisable(elsewhere))
  hook(_unraisable(other))
  assert [args.exc_value for args in seen] == [elsewhere, other]
