"""The import graph of common/: no cycle between its packages or modules, no import of a project.

Read statically (every `import` / `from ... import` in each file, function-level ones included:
a lazy import is still a dependency). Units for the package check: each first-level package
(common.data, common.eval, common.layers, common.tasks, common.train, ...), each module directly
in common/, and common/__init__.py. A `__main__.py` is a program, never imported by its package,
so its imports (e.g. `python -m common.eval` restoring through the trainer) do not join the
package graph; it must still import no project.
"""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FORBIDDEN = ("projects", "third_party")


def _modules() -> dict[str, str]:
  out = {}
  for folder, _, files in os.walk(os.path.join(ROOT, "common")):
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


MODULES = _modules()


def _imported(name: str, path: str) -> set[str]:
  """Every module name `path` imports (absolute, relative resolved), and `from X import y` as
  both X and X.y (y may be a module)."""
  with open(path) as f:
    tree = ast.parse(f.read(), path)
  package = name.split(".") if path.endswith("__init__.py") else name.split(".")[:-1]
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      out.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
      out.add(base)
      out.update(f"{base}.{alias.name}" for alias in node.names)
  return out


IMPORTS = {name: _imported(name, path) for name, path in MODULES.items()}


def _unit(module: str) -> str:
  parts = module.split(".")
  if len(parts) == 1:
    return module  # common/__init__.py
  first = ".".join(parts[:2])
  return first if os.path.isdir(os.path.join(ROOT, *parts[:2])) else module


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one node, or with a self loop (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1 or v in graph.get(v, ()):
        found.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return found


def _edges(module: str) -> set[str]:
  return {m for m in IMPORTS[module] if m in MODULES and m != module}


def test_the_walk_sees_the_packages():
  assert {"common.train.trainer", "common.eval.registry", "common.tasks.image"} <= set(MODULES)
  assert "common.eval.registry" in _edges("common.train.trainer")


def test_common_imports_no_project():
  bad = sorted(f"{m} imports {i}" for m, imported in IMPORTS.items() for i in imported
               if i.split(".")[0] in FORBIDDEN)
  assert not bad, "common/ must not import projects (dependencies point projects -> common):\n" + \
      "\n".join(bad)


def test_no_module_cycle():
  graph = {m: _edges(m) for m in MODULES}
  assert not _cycles(graph), _cycles(graph)


def test_no_package_cycle():
  graph: dict[str, set[str]] = {}
  for module in MODULES:
    if module.endswith(".__main__"):
      continue
    graph.setdefault(_unit(module), set())
    for target in _edges(module):
      if _unit(target) != _unit(module):
        graph[_unit(module)].add(_unit(target))
  cycles = _cycles(graph)
  if cycles:
    witnesses = [f"{m} -> {t}" for m in MODULES if not m.endswith(".__main__")
                 for t in _edges(m) if any({_unit(m), _unit(t)} <= set(c) for c in cycles)
                 and _unit(m) != _unit(t)]
    pytest.fail(f"package import cycles {cycles}; edges inside them:\n" + "\n".join(witnesses))
