"""Small helpers every Pallas wrapper here needs: interpret flags, shard_map types, vmap folding,
and the f32-accumulating tile matmul of the kernel bodies."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental.pallas import tpu as pltpu

from common.kernels import dispatch

# lax.dot_general dimension numbers of the tile matmuls.
NT = (((1,), (1,)), ((), ()))  # a @ b.T
TN = (((0,), (0,)), ((), ()))  # a.T @ b
NN = (((1,), (0,)), ((), ()))  # a @ b


def dot(a, b, dims):
  """A tile matmul accumulated in f32 (whatever the input dtype)."""
  return lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def interpret_arg(impl: str):
  """The `interpret=` value for pl.pallas_call under a resolved impl."""
  if impl == dispatch.INTERPRET_GPU:
    return True
  if impl == dispatch.INTERPRET_TPU:
    # Default params: uninitialised VMEM reads as NaN and out-of-bounds reads
    # raise, so a kernel that forgets an init or mis-indexes fails loudly.
    return pltpu.InterpretParams()
  return False


def _varying(x) -> frozenset:
  mat = getattr(jax.typeof(x), "manual_axis_type", None)
  return frozenset(mat.varying) if mat is not None else frozenset()


def match_varying(*arrays):
  """Marks every array as varying over the union of the arrays' manual axes.

  Inside shard_map(check_vma=True) a pallas_call needs its operands to agree
  on which mesh axes they vary over (e.g. positions built from arange vary
  over none while q varies over ('data', 'model')). Outside shard_map this is
  the identity. None entries pass through.
  """
  union = frozenset().union(*(_varying(a) for a in arrays if a is not None))
  if not union:
    return arrays
  out = []
  for a in arrays:
    missing = tuple(sorted(union - _varying(a))) if a is not None else ()
    out.append(jax.lax.pcast(a, missing, to="varying") if missing else a)
  return tuple(out)


def varying_like(x, *likes):
  """`x` marked as varying over every manual axis the `likes` vary over (for scan carries)."""
  union = frozenset().union(*(_varying(a) for a in likes if a is not None))
  missing = tuple(sorted(union - _varying(x)))
  return jax.lax.pcast(x, missing, to="varying") if missing else x


def out_struct(shape, dtype, like) -> jax.ShapeDtypeStruct:
  """ShapeDtypeStruct for a pallas_call output that varies like `like` under shard_map."""
  mat = getattr(jax.typeof(like), "manual_axis_type", None)
  if mat is None:
    return jax.ShapeDtypeStruct(shape, dtype)
  return jax.ShapeDtypeStruct(shape, dtype, manual_axis_type=mat)


def fold_vmap_into_batch(fn):
  """Makes `fn` batch under vmap by merging the vmapped axis into axis 0.

  `fn` takes arrays (or None) that all share a leading batch axis B and
  returns a tuple of such arrays. pallas_call's own vmap rule falls back to a
  serial loop when scalar-prefetch operands are batched; merging [V, B, ...]
  into [V*B, ...] instead keeps one kernel launch with a bigger grid.
  """

  @functools.wraps(fn)
  def wrapped(*args):

    @jax.custom_batching.custom_vmap
    def inner(*xs):
      return fn(*xs)

    @inner.def_vmap
    def _rule(axis_size, in_batched, *xs):
      flat = []
      for x, batched in zip(xs, in_batched):
        if x is None:
          flat.append(None)
          continue
        if not batched:
          x = jax.numpy.broadcast_to(x, (axis_size,) + x.shape)
        flat.append(x.reshape((axis_size * x.shape[1],) + x.shape[2:]))
      outs = inner(*flat)
      outs = tuple(o.reshape((axis_size, o.shape[0] // axis_size) + o.shape[1:])
                   for o in outs)
      return outs, tuple(True for _ in outs)

    return inner(*args)

  return wrapped
