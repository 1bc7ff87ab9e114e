"""Silence for the TensorStore reads a failed Orbax restore leaves behind.

Orbax runs a restore in a fresh event loop, gathering one TensorStore read per array, and closes
the loop when the first read raises. The other reads of that restore are still in flight. Each
one that completes later lands in the closed loop and is printed on its own, after the single
line that names the damaged file (`Checkpointer._damaged`):
  * a read that succeeds or fails after the close: `call_soon_threadsafe` raises 'Event loop is
    closed', which Python prints as an unraisable exception (`is_orphaned_callback`);
  * a read that failed before the close: its task's error was never retrieved, which asyncio
    logs with a traceback when the task is collected (`OrphanedReadFilter`).
Both belong to a restore that has already failed and been reported, and carry nothing else.
"""
from __future__ import annotations

import logging
import sys

# asyncio wraps an awaitable that is not a coroutine (a TensorStore future) in this coroutine.
_WRAPPED_AWAITABLE = "coro=<_wrap_awaitable()"


def is_orphaned_callback(unraisable) -> bool:
  """Whether an unraisable exception is a read completing into a closed event loop."""
  error, tb = unraisable.exc_value, unraisable.exc_traceback
  if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
    return False
  names = []
  while tb is not None:
    names.append(tb.tb_frame.f_code.co_name)
    tb = tb.tb_next
  return "call_soon_threadsafe" in names


class OrphanedReadFilter(logging.Filter):
  """Drops asyncio's 'Task exception was never retrieved' for wrapped awaitables (TensorStore
  reads); a coroutine's unretrieved error is still logged."""

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage()
    return not (text.startswith("Task exception was never retrieved")
                and _WRAPPED_AWAITABLE in text)


def silence() -> None:
  """Installs both filters, once per process: `sys.unraisablehook` is wrapped (every other
  unraisable exception goes to the hook that was there before) and the 'asyncio' logger gets
  an `OrphanedReadFilter`."""
  previous = sys.unraisablehook
  if not getattr(previous, "drops_orphaned_reads", False):
    def hook(unraisable):
      if not is_orphaned_callback(unraisable):
        previous(unraisable)

    hook.drops_orphaned_reads = True
    sys.unraisablehook = hook
  log = logging.getLogger("asyncio")
  if not any(isinstance(f, OrphanedReadFilter) for f in log.filters):
    log.addFilter(OrphanedReadFilter())
