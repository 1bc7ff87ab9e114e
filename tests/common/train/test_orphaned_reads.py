"""What a failed restore's leftover reads may print (common.train.orphaned_reads)."""
import asyncio
import gc
import logging
import sys
import types

from common.train import orphaned_reads


def _unraisable(error: BaseException):
  """What Python hands sys.unraisablehook (its args type is not importable)."""
  return types.SimpleNamespace(exc_type=type(error), exc_value=error,
                               exc_traceback=error.__traceback__, err_msg=None, object=None)


def test_only_reads_completing_into_a_closed_loop_are_dropped(monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  orphaned_reads.silence()
  hook = sys.unraisablehook
  orphaned_reads.silence()  # once per process: no second wrapper
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


class _FailingRead:
  """An awaitable that is not a coroutine, as a TensorStore future is, and fails."""

  def __await__(self):
    raise ValueError("DATA_LOSS: a damaged chunk")
    yield  # pylint: disable=unreachable


async def _failing_coroutine():
  raise ValueError("a coroutine's own error")


def _unretrieved_error_log(awaitable, caplog) -> str:
  """asyncio's log when a failed task is collected with its error never retrieved."""
  caplog.clear()
  loop = asyncio.new_event_loop()
  task = asyncio.ensure_future(awaitable, loop=loop)
  loop.run_until_complete(asyncio.sleep(0))
  assert task.done()
  loop.close()
  del task
  gc.collect()
  return caplog.text


def test_unretrieved_read_errors_are_dropped_and_coroutine_errors_kept(monkeypatch, caplog):
  log = logging.getLogger("asyncio")
  monkeypatch.setattr(log, "filters", [])
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
  with caplog.at_level(logging.ERROR, logger="asyncio"):
    assert "never retrieved" in _unretrieved_error_log(_FailingRead(), caplog)
    orphaned_reads.silence()
    orphaned_reads.silence()
    assert sum(isinstance(f, orphaned_reads.OrphanedReadFilter) for f in log.filters) == 1
    assert "never retrieved" not in _unretrieved_error_log(_FailingRead(), caplog)
    text = _unretrieved_error_log(_failing_coroutine(), caplog)
    assert "never retrieved" in text and "a coroutine's own error" in text
