"""Layer names for sown statistics, and averaging over repeated calls."""
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.layers import intermediates, mlp


class _Stack(nnx.Module):

  def __init__(self, prefix_names, rngs):
    for name in prefix_names:
      setattr(self, name, nnx.List([_Layer(rngs) for _ in range(2)]))

  def __call__(self, x):
    for name in sorted(vars(self)):
      value = getattr(self, name)
      if isinstance(value, nnx.List):
        for layer in value:
          x = layer(x)
    return x


class _Layer(nnx.Module):

  def __init__(self, rngs):
    self.mlp = mlp.Mlp(4, 8, rngs=rngs)

  def __call__(self, x):
    return self.mlp(x)


def test_names_from_paths_in_layer_order():
  model = _Stack(["layers"], nnx.Rngs(0))
  model.layers.extend([_Layer(nnx.Rngs(1)) for _ in range(9)])  # 11 layers: 10 sorts after 9
  model(jnp.ones((2, 3, 4)))
  names = list(intermediates.pop_layer_stats(model))
  assert names == [f"layer_{i}" for i in range(11)]


def test_nested_stacks_and_repeated_calls_average():
  model = _Stack(["encoder_layers"], nnx.Rngs(0))
  block = model.encoder_layers[0].mlp
  x1, x2 = jnp.ones((2, 4)), -jnp.ones((2, 4))
  block(x1)
  block(x2)
  stats = intermediates.pop_layer_stats(model)
  assert list(stats) == ["layer_0"]
  want = (mlp.nonzero_fraction(block.wi(x1) > 0) + mlp.nonzero_fraction(block.wi(x2) > 0)) / 2
  np.testing.assert_allclose(stats["layer_0"], want, rtol=1e-6)


def test_name_rule():
  assert intermediates._layer_name(("encoder", "layers", 3, "mlp")) == "encoder_layer_3"
  assert intermediates._layer_name(("layers", 0, "mlp")) == "layer_0"
  assert intermediates._layer_name(("a", "mlp")) == "a_mlp"
  assert intermediates._layer_name(()) == "root"


def test_collisions_are_an_error():
  state = nnx.State({"a": {0: {"m1": {"act_nonzero": nnx.Intermediate((jnp.ones(2),))},
                               "m2": {"act_nonzero": nnx.Intermediate((jnp.ones(2),))}}}})
  with pytest.raises(ValueError, match="under the layer name"):
    intermediates.layer_stats(state)
