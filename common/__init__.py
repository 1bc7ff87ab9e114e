"""Shared library: layers, kernels, trainer, data and evaluation. Imports no project."""
import flax as _flax

# Parameters carry logical-axis names ("embed", "mlp", ...) as metadata; the trainer maps them onto
# the mesh itself (common.train.sharding) and initialises under jax.jit with out_shardings. Flax's
# eager variable sharding would instead demand a mesh context at construction time, which breaks
# building models on a laptop or inside nnx.eval_shape, so it is switched off once, here.
_flax.config.update("flax_always_shard_variable", False)
