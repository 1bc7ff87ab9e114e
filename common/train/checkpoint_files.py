"""What lies on disk in a checkpoint step: naming the broken file, and the saved data positions.

Orbax reports a damaged checkpoint through tensorstore or JSON errors whose text may or may
not hold the path. A researcher needs the one file to look at (or to know the step is lost),
so `find_bad_file` takes the path from the error when there is one and otherwise checks the
small metadata files itself.
"""
from __future__ import annotations

import json
import os
import re

# Grain's Orbax handler writes one file per process: data/process_<i>-of-<n>.json.
_DATA_FILE = re.compile(r"^process_(\d+)-of-(\d+)\.json$")
# JSON files Orbax writes into every step (and into each item); a truncated one breaks restore.
_JSON_NAMES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata")


def _error_text(error: BaseException) -> str:
  parts, seen = [], set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    parts.append(str(error))
    error = error.__cause__ or error.__context__
  return "\n".join(parts)


def find_bad_file(step_dir: str, error: BaseException | None = None) -> str | None:
  """The file in `step_dir` that most likely broke a restore, or None if none stands out."""
  step_dir = os.path.abspath(step_dir)
  if error is not None:
    # Tensorstore names files as `local file "<path>"`; the deepest existing one is the culprit.
    named = [p for p in re.findall(r'"(/[^"]+)"', _error_text(error))
             if p.startswith(step_dir) and os.path.isfile(p)]
    if named:
      return max(named, key=len)
  for root, _, files in sorted(os.walk(step_dir)):
    for name in sorted(files):
      path = os.path.join(root, name)
      if os.path.getsize(path) == 0 and name != "commit_success.txt":
        return path
      if name in _JSON_NAMES or name.endswith(".json"):
        try:
          with open(path) as f:
            json.load(f)
        except (ValueError, UnicodeDecodeError):
          return path
        except OSError:
          return path
  return None


def saved_data_positions(data_dir: str) -> dict[tuple[int, int], str]:
  """{(process_index, process_count): path} of the data positions saved in `data_dir`."""
  if not os.path.isdir(data_dir):
    return {}
  found = {}
  for name in os.listdir(data_dir):
    m = _DATA_FILE.match(name)
    if m:
      found[(int(m.group(1)), int(m.group(2)))] = os.path.join(data_dir, name)
  return found
