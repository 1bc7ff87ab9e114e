"""Token-choice mixture-of-experts MLPs: Switch-style (learned router) and MoE-X (sparsity router).

Both layers are one wide MLP of hidden width M*D (M experts of D hidden units each):

    z_j   = act(x W_enc^j + b_enc^j)                       [D] per expert j
    y     = sum_{j in TopK} w_j (z_j W_dec^j) + b_dec      (b_dec shared, as in the dense MLP)
          = [W_dec^1 ... W_dec^M] . [w_1 z_1; ...; w_M z_M] + b_dec

so the "hidden code" [w_1 z_1; ...; w_M z_M] (zero for the non-routed experts) is the M*D-unit
activation that MoE-X (Yang et al., ICML 2025) evaluates for interpretability.

Routers (`router=`):
  'learned'   logits = x W_r; w = softmax over the top-k logits (`renormalize=True`, the GShard /
              Mixtral choice), or the full-softmax probabilities at the top-k (`renormalize=False`,
              Switch-Transformer's k=1 choice). Router probabilities P = softmax(logits / tau).
  'sparsity'  MoE-X's sparsity-aware router, no router parameters. Per expert j, the mean mu_j and
              (population, ddof=0) variance var_j over the D hidden units of W_enc^j's d-dim
              weight vectors; mu_h = mu_j . x, sigma_h = sqrt(var_j . (x*x) + eps); the
              score s_j = -erf(mu_h / (sqrt(2) sigma_h)) = 1 - 2 P(h > 0), so a high score means
              a small expected L0 of z_j. w = softmax(top-k s / tau). Gradients reach W_enc
              through mu_j and var_j. With `router_bias=True` (our default, a guess: the paper's
              equation has no bias), the expert's encoder bias is treated as part of the same
              Gaussian: mu_h += mean(b_enc^j), sigma_h^2 += var(b_enc^j). P = softmax(s / tau).

Auxiliary quantities are sown into `nnx.Intermediate` (read them with
`common.layers.intermediates.layer_stats(state, name)`):
  'balance_loss'  scalar; 'switch': M * sum_i f_i P_i (f_i = fraction of the N*k token->expert
                  assignments that go to expert i, P_i = mean router probability; 1.0 when
                  perfectly balanced), 'cv2': squared coefficient of variation of the summed
                  routing weights per expert (Shazeer et al. 2017), 'none': 0.
  'z_loss'        scalar mean logsumexp(logits)^2 (ST-MoE), only with `z_loss=True`.
  'expert_load'   [M], the f_i above.
  'hidden_l0'     scalar, mean number of nonzero hidden-code units per token.
  'dropped'       scalar, fraction of assignments dropped for capacity ('capacity' dispatch only).
  'mlp_hidden'    [..., M*D], the hidden code, and 'router_scores' [..., M] (the router's
                  pre-softmax scores) and 'expert_l0' [..., M] (nonzero units of EVERY expert's
                  z_j, routed or not: the truth the sparsity score predicts, paper Fig. 9),
                  only when `sow_hidden=True` (as wide as the whole expert layer).
Token weights (`token_mask`, 0 for padding) exclude tokens from every statistic above.

Dispatch (`dispatch=`):
  'dense'     compute z_j for all M experts and zero the non-routed ones. M/k times the active
              FLOPs, but a few large matmuls with no gather; a simple choice for few experts
              (8 experts top-2 here; 'dropless' below does fewer FLOPs, moves more bytes).
              Output is exact: no token is dropped.
  'capacity'  GShard-style einsum dispatch/combine per sequence (the group is one batch row, so
              it shards with the batch): each expert takes at most C = ceil(capacity_factor *
              T * k / M) tokens of a row, first choices before second choices; overflowing
              assignments are dropped (their weight is lost, the residual carries the token).
              Costs ~capacity_factor times the active FLOPs plus O(T^2 k) dispatch tensors;
              use it for wide experts / many experts on accelerators. Needs x of shape [B, T, d].
  'dropless'  grouped matmul (the megablox / MaxText approach): the N tokens' N*k token->expert
              assignments are sorted by expert and each expert's encoder and decoder run as one
              grouped matmul over its contiguous rows (`common.layers.grouped_matmul`); the rows
              are weighted, unsorted and summed per token. No token is dropped and any leading
              shape works; the output, gradients and statistics equal 'dense' up to float
              reassociation. The grouped matmul is `jax.lax.ragged_dot` off CPU (backward: jax's
              own transpose, dX a ragged_dot, dW a ragged-contracting ragged_dot_general); where
              the backend has a grouped kernel (TPU; on GPU jax's Triton one under
              `jax_ragged_dot_use_gpu_pallas_triton_lowering`; XLA's default GPU lowering is
              unchecked here: no GPU was lent) it costs ~the active FLOPs plus one sort and a few
              row gathers of [N*k, d]. On CPU jax lowers ragged_dot to a masked product over all
              M experts (k times 'dense' dispatch's FLOPs), so there it is grouped_matmul's
              'windowed' path instead: a scan of plain matmuls over windows of each expert's
              rows (at most the active FLOPs plus one window per expert), with a custom
              backward of the same shape. The sort and unsort are gathers whose transposes are
              gathers by the inverse permutation (`_permute`), not scatter-adds. On CPU (2 cores,
              float32, 8 experts top-2, benchmarks/RESULTS.md) MoE-X dropless takes 1.6-1.7x
              the time of a dense MLP of the same active width at the paper's chess layer
              (d = 512, experts of 2048) and 2.6-4.0x at d = 256, experts of 128, where the
              per-row sort, gathers and router weigh more; 'dense' dispatch takes 3.5-4.2x there.
              Sharding: when a mesh is set with `jax.set_mesh` (Auto axes, as common.train.mesh
              makes them), the rows run under `shard_map`, MaxText-style: the experts are split
              over `expert_axis` (default 'expert', where the default rules put the 'expert'
              logical name) when it divides M, and the tokens over every other mesh axis that
              divides N. Each device keeps its batch shard's tokens (not split over the expert
              axis, so each expert shard sees them all: already their layout when 'batch' is not
              on that axis), sorts them against its own M / size experts only, runs the grouped
              matmul on those (the rows routed to other shards' experts sort last, in no
              group, and give zeros: the windowed path skips them, ragged_dot computes them
              unless its backend's kernel skips rows past the groups), and a psum over the
              expert axis adds the shards' outputs. Weights arrive split over experts and
              gathered over the other axes (FSDP's per-layer gather; no tensor parallelism over
              'mlp' inside the experts).
              Without a set mesh (the legacy `with mesh:` context, which jit cannot see, is what
              common.train.trainer uses today) the layer is one GSPMD/Shardy program: results
              and gradients are still correct on any mesh, but the sort is over the global
              batch, and Shardy's rule for ragged_dot replicates both its rows and its group
              (expert) dimension, so on TPU/GPU every device would compute every row of the
              batch for all experts. (On CPU the windowed path's scan is partitioned by
              GSPMD as it sees fit; results are checked, its cost is not.)
"""
from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

import common  # noqa: F401  (switches off eager variable sharding before any Param exists)
from common.kernels import pallas_support
from common.layers import activations, grouped_matmul, prefix_sums, validation
from common.layers.initializers import Initializer

ROUTERS = ("learned", "sparsity")
DISPATCH = ("dense", "capacity", "dropless")
BALANCE_LOSSES = ("switch", "cv2", "none")
UPCYCLE_MODES = ("auto", "copy", "split")


def sparsity_scores(x: jax.Array, w_enc: jax.Array, b_enc: jax.Array | None = None, *,
                    eps: float = 1e-6) -> jax.Array:
  """MoE-X's gate score s_j = -erf(mu_h / (sqrt(2) sigma_h)), [..., d] -> [..., M].

  `w_enc` is [M, d, D] (expert, input, hidden unit); `b_enc` [M, D] or None (bias ignored).
  """
  w = w_enc.astype(jnp.float32)
  x = x.astype(jnp.float32)
  mu = jnp.mean(w, axis=-1)                     # [M, d]: mean over the D hidden units
  var = jnp.var(w, axis=-1)                     # [M, d]
  mu_h = jnp.einsum("...d,md->...m", x, mu)
  var_h = jnp.einsum("...d,md->...m", x * x, var)
  if b_enc is not None:
    b = b_enc.astype(jnp.float32)
    mu_h = mu_h + jnp.mean(b, axis=-1)
    var_h = var_h + jnp.var(b, axis=-1)
  return -jax.scipy.special.erf(mu_h / (math.sqrt(2.0) * jnp.sqrt(var_h + eps)))


def top_k_weights(scores: jax.Array, k: int, *, temperature: float = 1.0,
                  renormalize: bool = True) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(gates [..., M] with k nonzero entries, top-k indices [..., k], probabilities [..., M]).

  probabilities = softmax(scores / temperature) over all experts; gates are the softmax over the
  top-k scores (`renormalize`) or the probabilities at the top-k.
  """
  logits = scores.astype(jnp.float32) / temperature
  probs = jax.nn.softmax(logits, axis=-1)
  top, idx = jax.lax.top_k(logits, k)
  w = jax.nn.softmax(top, axis=-1) if renormalize else jnp.take_along_axis(probs, idx, axis=-1)
  one_hot = jax.nn.one_hot(idx, scores.shape[-1], dtype=jnp.float32)   # [..., k, M]
  return jnp.einsum("...k,...km->...m", w, one_hot), idx, probs


def balance_loss(kind: str, gates: jax.Array, idx: jax.Array, probs: jax.Array,
                 token_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """(loss, expert load f [M]) over the valid tokens; see the module docstring for the forms."""
  m = probs.shape[-1]
  gates, probs = gates.reshape(-1, m), probs.reshape(-1, m)
  chosen = jnp.sum(jax.nn.one_hot(idx.reshape(-1, idx.shape[-1]), m), axis=1)   # [N, M]
  w = (jnp.ones(chosen.shape[0]) if token_mask is None
       else token_mask.reshape(-1).astype(jnp.float32))
  total = jnp.maximum(jnp.sum(w), 1.0)
  load = jnp.einsum("nm,n->m", chosen, w) / (total * idx.shape[-1])
  if kind == "switch":
    mean_prob = jnp.einsum("nm,n->m", probs, w) / total
    loss = m * jnp.sum(load * mean_prob)
  elif kind == "cv2":
    importance = jnp.einsum("nm,n->m", gates, w)
    loss = jnp.var(importance) / jnp.maximum(jnp.mean(importance) ** 2, 1e-9)
  else:
    loss = jnp.zeros((), jnp.float32)
  return loss, load


def _per_expert(init: Initializer, key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
  """Each expert's matrix drawn on its own, so fan-based initialisers see [in, out], not [M, ...]."""
  keys = jax.random.split(key, shape[0])
  return jax.vmap(lambda k: init(k, shape[1:], dtype))(keys)


class SparseMoE(nnx.Module):
  """M experts of width D, top-k token choice; `x [..., d] -> [..., d]`.

  Args:
    d_model: d. expert_hidden: D. num_experts: M. top_k: k (1 <= k <= M).
    activation: expert nonlinearity ('relu' for MoE-X, 'gelu' for Switch/GPT-2; any name of
      common.layers.activations that is not gated).
    router: 'learned' | 'sparsity' (module docstring).
    renormalize: learned router only; weights = softmax over the top-k (True) or the full
      softmax's top-k probabilities (False). The sparsity router always renormalises (paper).
    temperature: divides the scores before every softmax. eps: sparsity router's variance floor.
    router_bias: sparsity router; include the encoder bias in mu_h / sigma_h.
    balance: 'switch' | 'cv2' | 'none' (form of the sown 'balance_loss'; the task weights it).
    z_loss: also sow the router z-loss.
    dispatch: 'dense' | 'capacity' | 'dropless'; capacity_factor: for 'capacity'.
    expert_axis: 'dropless' only; the mesh axis the experts are split over when a mesh is set
      with `jax.set_mesh` (module docstring, "Sharding"); None: never expert-parallel.
    use_bias: encoder biases [M, D] and one shared decoder bias [d].
    kernel_init / out_kernel_init: per-expert [d, D] / [D, d] initialisers; router_init for W_r.
    sow_hidden: sow 'mlp_hidden', 'router_scores', 'expert_l0' (interpretability evals).
  """

  def __init__(self, d_model: int, expert_hidden: int, num_experts: int, top_k: int, *,
               activation: str = "relu", router: str = "sparsity", renormalize: bool = True,
               temperature: float = 1.0, eps: float = 1e-6, router_bias: bool = True,
               balance: str = "switch", z_loss: bool = False, dispatch: str = "dense",
               capacity_factor: float = 1.25, expert_axis: str | None = "expert",
               use_bias: bool = True,
               kernel_init: Initializer = nnx.initializers.normal(0.02),
               out_kernel_init: Initializer | None = None,
               router_init: Initializer = nnx.initializers.normal(0.02),
               dtype: Any = None, param_dtype: Any = jnp.float32, sow_hidden: bool = False,
               rngs: nnx.Rngs):
    for name, value in (("d_model", d_model), ("expert_hidden", expert_hidden),
                        ("num_experts", num_experts), ("top_k", top_k)):
      validation.check_positive(name, value)
    if top_k > num_experts:
      raise ValueError(f"top_k={top_k} must be <= num_experts={num_experts}: a token cannot be "
                       "routed to more experts than exist.")
    activations.get_activation(activation)
    if activations.is_gated(activation):
      raise ValueError(f"activation={activation!r}: gated activations are not supported in "
                       "experts (the sparsity score assumes z = act(W x + b)); use 'relu'/'gelu'.")
    validation.check_choice("router", router, ROUTERS)
    validation.check_choice("dispatch", dispatch, DISPATCH)
    validation.check_choice("balance", balance, BALANCE_LOSSES)
    if not temperature > 0:
      raise ValueError(f"temperature={temperature!r} must be > 0.")
    if not eps > 0:
      raise ValueError(f"eps={eps!r} must be > 0 (it keeps sigma_h > 0 for x = 0).")
    if dispatch == "capacity" and not capacity_factor > 0:
      raise ValueError(f"capacity_factor={capacity_factor!r} must be > 0.")
    self.d_model, self.expert_hidden = d_model, expert_hidden
    self.num_experts, self.top_k = num_experts, top_k
    self.activation, self.router = activation, router
    self.renormalize, self.temperature, self.eps = renormalize, temperature, eps
    self.router_bias, self.balance, self.use_z_loss = router_bias, balance, z_loss
    self.dispatch, self.capacity_factor = dispatch, capacity_factor
    self.expert_axis = expert_axis
    self.dtype, self.sow_hidden = dtype, sow_hidden

    def param(init, shape, axes):
      return nnx.Param(nnx.with_partitioning(init, axes)(rngs.params(), shape, param_dtype))

    per_expert = lambda init: (lambda k, s, dt: _per_expert(init, k, s, dt))
    m, d, h = num_experts, d_model, expert_hidden
    self.w_enc = param(per_expert(kernel_init), (m, d, h), ("expert", "embed", "mlp"))
    self.w_dec = param(per_expert(out_kernel_init or kernel_init), (m, h, d),
                       ("expert", "mlp", "embed"))
    self.b_enc = param(nnx.initializers.zeros, (m, h), ("expert", "mlp")) if use_bias else None
    self.b_dec = param(nnx.initializers.zeros, (d,), ("embed",)) if use_bias else None
    self.w_router = (param(router_init, (d, m), ("embed", "expert")) if router == "learned"
                     else None)

  # --- routing -------------------------------------------------------------------------------
  def scores(self, x: jax.Array) -> jax.Array:
    """Pre-softmax router scores [..., M] (learned logits or MoE-X sparsity scores)."""
    if self.router == "learned":
      return jnp.einsum("...d,dm->...m", x.astype(jnp.float32),
                        self.w_router[...].astype(jnp.float32))
    bias = self.b_enc[...] if (self.router_bias and self.b_enc is not None) else None
    return sparsity_scores(x, self.w_enc[...], bias, eps=self.eps)

  def route(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(scores, gates [..., M], top-k indices [..., k], probabilities [..., M])."""
    s = self.scores(x)
    renorm = self.renormalize or self.router == "sparsity"
    gates, idx, probs = top_k_weights(s, self.top_k, temperature=self.temperature,
                                      renormalize=renorm)
    return s, gates, idx, probs

  # --- experts -------------------------------------------------------------------------------
  def _encode(self, x: jax.Array, spec: str, bias_shape: tuple[int, ...]) -> jax.Array:
    dtype = self.dtype or x.dtype
    h = jnp.einsum(spec, x.astype(dtype), self.w_enc[...].astype(dtype))
    if self.b_enc is not None:
      h = h + self.b_enc[...].astype(dtype).reshape(bias_shape)
    return activations.get_activation(self.activation)(h)

  def _dense(self, x, gates):
    z = self._encode(x, "...d,mdh->...mh", (self.num_experts, -1))   # [..., M, D]
    code = z * gates.astype(z.dtype)[..., None]
    y = jnp.einsum("...mh,mhd->...d", code, self.w_dec[...].astype(code.dtype))
    l0 = jnp.sum((code != 0).astype(jnp.float32), axis=(-2, -1))
    return y, code, l0, None

  def _capacity(self, x, gates, idx, token_mask):
    if x.ndim != 3:
      raise ValueError(f"dispatch='capacity' needs x of shape [batch, seq, d]; got {x.shape}.")
    b, t, _ = x.shape
    m, k = self.num_experts, self.top_k
    cap = max(1, math.ceil(self.capacity_factor * t * k / m))
    choice = jax.nn.one_hot(idx, m, dtype=jnp.int32)               # [B, T, k, M]
    if token_mask is not None:  # padding takes no expert slots
      choice = choice * (token_mask > 0).astype(jnp.int32)[:, :, None, None]
    # Priority: every token's first choice, then every second choice (GShard).
    by_rank = jnp.swapaxes(choice, 1, 2).reshape(b, k * t, m)
    pos = (prefix_sums.prefix_sum(by_rank, 1) - 1) * by_rank      # slot index where chosen
    pos = jnp.swapaxes(pos.reshape(b, k, t, m), 1, 2)              # [B, T, k, M]
    keep = choice * (pos < cap)
    slot = jax.nn.one_hot(jnp.sum(pos * keep, axis=2), cap, dtype=jnp.float32)  # [B, T, M, C]
    kept = jnp.sum(keep, axis=2).astype(jnp.float32)                # [B, T, M] in {0, 1}
    dispatch = slot * kept[..., None]
    combine = dispatch * gates[..., None]
    dtype = self.dtype or x.dtype
    xe = jnp.einsum("btmc,btd->bmcd", dispatch.astype(dtype), x.astype(dtype))
    z = self._encode(xe, "bmcd,mdh->bmch", (self.num_experts, 1, -1))  # [B, M, C, D]
    out = jnp.einsum("bmch,mhd->bmcd", z, self.w_dec[...].astype(z.dtype))
    y = jnp.einsum("btmc,bmcd->btd", combine.astype(out.dtype), out)
    routed = jnp.sum(choice).astype(jnp.float32)
    dropped = 1.0 - jnp.sum(kept) / jnp.maximum(routed, 1.0)
    nonzero = jnp.sum((z != 0).astype(jnp.float32), axis=-1)        # [B, M, C]
    l0 = jnp.einsum("btmc,bmc->bt", dispatch * (gates > 0)[..., None], nonzero)
    code = None
    if self.sow_hidden:  # scatter the slots back to tokens: only for interpretability reads
      code = jnp.einsum("btmc,bmch->btmh", combine.astype(z.dtype), z)
    return y, code, l0, dropped

  def _dropless(self, x, gates, idx):
    lead, d, m = x.shape[:-1], x.shape[-1], self.num_experts
    dtype = self.dtype or x.dtype
    x = x.reshape(-1, d).astype(dtype)
    idx = idx.reshape(-1, self.top_k)
    weight = jnp.take_along_axis(gates.reshape(-1, m), idx, axis=-1)   # [N, k] gate weights
    params = [self.w_enc[...].astype(dtype), self.w_dec[...].astype(dtype)]
    if self.b_enc is not None:
      params.append(self.b_enc[...].astype(dtype))
    rows = lambda first, x, idx, weight, *p: _dropless_rows(
        x, idx, weight, *p, num_experts=m, first_expert=first, activation=self.activation,
        want_code=self.sow_hidden)
    mesh = _set_mesh()
    if mesh is None:
      y, l0, code = rows(0, x, idx, weight, *params)
    else:
      y, l0, code = _sharded_rows(rows, mesh, self.expert_axis, x, idx, weight, params,
                                  want_code=self.sow_hidden)
    code = None if code is None else code.reshape(*lead, m, -1)
    return y.reshape(*lead, d), code, l0.reshape(lead), None

  def __call__(self, x: jax.Array, *, token_mask: jax.Array | None = None) -> jax.Array:
    """x [..., d] (capacity dispatch: [B, T, d]); token_mask [...] (0 = padding)."""
    s, gates, idx, probs = self.route(x)
    if self.dispatch == "dense":
      y, code, l0, dropped = self._dense(x, gates)
    elif self.dispatch == "dropless":
      y, code, l0, dropped = self._dropless(x, gates, idx)
    else:
      y, code, l0, dropped = self._capacity(x, gates, idx, token_mask)
    if self.b_dec is not None:
      y = y + self.b_dec[...].astype(y.dtype)
    loss, load = balance_loss(self.balance, gates, idx, probs, token_mask)
    self.sow(nnx.Intermediate, "balance_loss", loss)
    self.sow(nnx.Intermediate, "expert_load", load)
    if self.use_z_loss:
      z_tok = jnp.square(jax.nn.logsumexp(s / self.temperature, axis=-1))
      self.sow(nnx.Intermediate, "z_loss", _masked_mean(z_tok, token_mask))
    if dropped is not None:
      self.sow(nnx.Intermediate, "dropped", dropped)
    self.sow(nnx.Intermediate, "hidden_l0", _masked_mean(l0, token_mask))
    if self.sow_hidden:
      self.sow(nnx.Intermediate, "mlp_hidden", code.reshape(*code.shape[:-2], -1))
      self.sow(nnx.Intermediate, "router_scores", s)
      # Every expert's own L0, routed or not (recomputed: the capacity path never has it).
      z_all = self._encode(x, "...d,mdh->...mh", (self.num_experts, -1))
      self.sow(nnx.Intermediate, "expert_l0", jnp.sum((z_all != 0).astype(jnp.float32), axis=-1))
    return y.astype(self.dtype or x.dtype)


def _dropless_rows(x, idx, weight, w_enc, w_dec, b_enc=None, *, num_experts: int,
                   first_expert, activation: str, want_code: bool):
  """Experts first_expert .. first_expert + M_loc - 1 (w_enc [M_loc, d, D]) applied to tokens.

  x [n, d]; idx [n, k] global expert ids; weight [n, k] gate weights. Returns (y [n, d], the
  contribution of these experts; l0 [n], their nonzero hidden-code units per token; code
  [n, M_loc, D] or None). With M_loc = M and first_expert = 0 this is the whole layer.
  """
  n, k = idx.shape
  m_loc = w_enc.shape[0]
  # Rank experts from first_expert on, so this shard's experts are groups 0 .. M_loc - 1 and
  # every other expert's rows sort after them, where grouped_matmul leaves them out.
  local = ((idx - first_expert) % num_experts).reshape(-1)          # [n*k]
  # A counting sort (stable: each expert's rows keep token order): with M keys, a cumsum over the
  # [n*k, M] one-hot ranks every row within its expert, at a third of lax.sort's time on CPU.
  choice = (local[:, None] == jnp.arange(num_experts, dtype=local.dtype)).astype(jnp.int32)
  sizes = jnp.sum(choice, axis=0)
  rank = jnp.sum((prefix_sums.prefix_sum(choice, 0) - choice) * choice, axis=1)
  inverse = (prefix_sums.prefix_sum(sizes, 0) - sizes)[local] + rank  # row -> its sorted slot
  order = jnp.zeros_like(inverse).at[inverse].set(jnp.arange(n * k, dtype=inverse.dtype))
  expert = local[order]
  group_sizes = sizes[:m_loc]
  h = grouped_matmul.grouped_matmul(_permute(jnp.repeat(x, k, axis=0), order, inverse), w_enc,
                                    group_sizes)   # [n*k, D]
  if b_enc is not None:
    h = h + b_enc[jnp.minimum(expert, m_loc - 1)]
  # Rows past the last group (other shards' experts) have h = 0 but a bias: mask them. Weight
  # before decoding, as the dense path does, so these rows ARE the hidden code (same zeros, so
  # the same L0). grouped_matmul gives those rows zero output.
  mine = (expert < m_loc)[:, None]
  code = jnp.where(mine, activations.get_activation(activation)(h)
                   * weight.reshape(-1)[order].astype(h.dtype)[:, None], 0)
  out = grouped_matmul.grouped_matmul(code, w_dec, group_sizes)   # [n*k, d]
  y = jnp.sum(_permute(out, inverse, order).reshape(n, k, -1), axis=1)   # unsorted
  l0 = jnp.sum(jnp.sum((code != 0).astype(jnp.float32), axis=-1)[inverse].reshape(n, k), axis=1)
  token_code = None
  if want_code:  # interpretability reads only: [n, k, D] rows spread over [n, M_loc, D]
    slot = jax.nn.one_hot(local.reshape(n, k), m_loc, dtype=code.dtype)   # other experts: 0
    token_code = jnp.einsum("nkh,nkm->nmh", code[inverse].reshape(n, k, -1), slot)
  return y, l0, token_code


def _permute(x, perm, inverse):
  """x[perm] for a permutation `perm` of x's rows whose inverse is `inverse`.

  Autodiff would transpose the gather into a scatter-add, which XLA:CPU runs row by row; the
  transpose of a permutation is the inverse permutation, one more gather.
  """
  # Inside shard_map: one varying type for all three, so that the gradient has x's type.
  return _permute_rows(*pallas_support.match_varying(x, perm, inverse))


@jax.custom_vjp
def _permute_rows(x, perm, inverse):
  return x[perm]


def _permute_fwd(x, perm, inverse):
  return x[perm], (perm, inverse)


def _permute_bwd(res, ct):
  perm, inverse = res
  zero = np.zeros(perm.shape, jax.dtypes.float0)
  return ct[inverse], zero, zero


_permute_rows.defvjp(_permute_fwd, _permute_bwd)


def _set_mesh():
  """The mesh set with `jax.set_mesh` (visible inside jit), or None when there is none to use."""
  mesh = jax.sharding.get_abstract_mesh()
  return None if mesh.empty or math.prod(mesh.shape.values()) == 1 else mesh


def _sharded_rows(rows, mesh, expert_axis: str | None, x, idx, weight, params, *,
                  want_code: bool):
  """`rows` under shard_map: experts split over `expert_axis` (when it divides M), the N tokens
  over every other mesh axis that divides N (in mesh order, so the split refines the batch
  layout and moves nothing).

  Tokens are not split over the expert axis: every expert shard holds all the tokens of its
  batch shard (MaxText's all-gather variant; with 'batch' off the expert axis, as in the default
  rules, that is already their layout), routes them to its own experts only, and a psum over
  the expert axis adds the shards' contributions. Each device sorts only its own tokens.
  """
  n, m = x.shape[0], params[0].shape[0]
  size = mesh.shape.get(expert_axis, 1) if expert_axis else 1
  axis = expert_axis if size > 1 and m % size == 0 else None
  token_axes: list[str] = []
  for name, s in mesh.shape.items():
    if name != axis and s > 1 and n % (s * math.prod(mesh.shape[a] for a in token_axes)) == 0:
      token_axes.append(name)
  tok = tuple(token_axes) or None

  def body(x, idx, weight, *p):
    first = jax.lax.axis_index(axis) * p[0].shape[0] if axis else 0
    out = rows(first, x, idx, weight, *p)
    summed = tuple(jax.lax.psum(v, axis) if axis else v for v in out[:2])
    return summed + ((out[2],) if want_code else ())

  param_specs = [P(axis, None, None)] * 2 + [P(axis, None)] * (len(params) - 2)
  out_specs = (P(tok, None), P(tok)) + ((P(tok, axis, None),) if want_code else ())
  out = jax.shard_map(body, mesh=mesh, in_specs=(P(tok, None),) * 3 + tuple(param_specs),
                      out_specs=out_specs)(x, idx, weight, *params)
  return out if want_code else (*out, None)


def _masked_mean(v: jax.Array, token_mask: jax.Array | None) -> jax.Array:
  if token_mask is None:
    return jnp.mean(v)
  w = token_mask.astype(jnp.float32)
  return jnp.sum(v * w) / jnp.maximum(jnp.sum(w), 1.0)


def SwitchMoE(d_model: int, expert_hidden: int, num_experts: int, top_k: int, *,
              activation: str = "gelu", router: str = "learned", **kwargs) -> SparseMoE:
  """The Switch / GShard baseline: learned softmax router, GELU experts (paper Tab. 1 'Switch')."""
  return SparseMoE(d_model, expert_hidden, num_experts, top_k, activation=activation,
                   router=router, **kwargs)


def MoEX(d_model: int, expert_hidden: int, num_experts: int, top_k: int, *,
         activation: str = "relu", router: str = "sparsity", **kwargs) -> SparseMoE:
  """MoE-X: ReLU experts and the sparsity-aware router. `router='learned'` is Tab. 3's 'ReLU
  only' ablation; `activation='gelu'` its 'sparsity router only'."""
  return SparseMoE(d_model, expert_hidden, num_experts, top_k, activation=activation,
                   router=router, **kwargs)


def upcycle(wi: jax.Array, bi: jax.Array | None, wo: jax.Array, bo: jax.Array | None, *,
            num_experts: int, expert_hidden: int, mode: str = "auto", noise_std: float = 0.0,
            key: jax.Array | None = None) -> dict[str, jax.Array]:
  """A dense MLP (wi [d, H], bi [H], wo [H, d], bo [d]) -> SparseMoE expert parameters.

  The paper's recipe is not recovered (spec 2.2.5); two documented options:
    'copy'   every expert is the dense MLP (needs expert_hidden == H). With gates summing to 1
             (renormalised top-k) the layer's output equals the dense MLP's exactly (no noise).
    'split'  the H hidden units are cut into G = H / expert_hidden slices; expert j holds slice
             j mod G, and decoders are scaled by G (needs G | num_experts). If a token's k
             experts hold every slice once with equal weights 1/G (k = G), the output equals the
             dense MLP's; otherwise it is an approximation that training repairs. This is the
             equal-active-parameters case of the paper (dense 4096 -> experts 2048, top-2, G = 2).
    'auto'   'copy' when expert_hidden == H, else 'split'.
  noise_std: Gaussian noise, relative to each kernel's std, added to the expert kernels (not the
  biases) so identical experts can diverge; the router otherwise sees identical experts.
  Returns {'w_enc' [M, d, D], 'b_enc' [M, D] | None, 'w_dec' [M, D, d], 'b_dec' [d] | None}.
  """
  validation.check_choice("mode", mode, UPCYCLE_MODES)
  d, h = wi.shape
  if wo.shape != (h, d):
    raise ValueError(f"upcycle: wo has shape {wo.shape}; expected {(h, d)} to match wi {wi.shape}.")
  if mode == "auto":
    mode = "copy" if expert_hidden == h else "split"
  if mode == "copy" and expert_hidden != h:
    raise ValueError(f"upcycle mode='copy' needs expert_hidden == dense hidden ({h}); got "
                     f"{expert_hidden}. Use mode='split' for narrower experts.")
  if mode == "split" and (h % expert_hidden or num_experts % (h // expert_hidden)):
    raise ValueError(f"upcycle mode='split': expert_hidden={expert_hidden} must divide the dense "
                     f"hidden width {h}, and the number of slices {h / expert_hidden:g} must "
                     f"divide num_experts={num_experts}.")
  if noise_std < 0 or (noise_std > 0 and key is None):
    raise ValueError(f"upcycle noise_std={noise_std!r} must be >= 0, and > 0 needs a PRNG `key`.")
  g = h // expert_hidden
  slices = jnp.arange(num_experts) % g
  w_enc = wi.reshape(d, g, expert_hidden).transpose(1, 0, 2)[slices]          # [M, d, D]
  w_dec = wo.reshape(g, expert_hidden, d)[slices] * g                            # [M, D, d]
  b_enc = None if bi is None else bi.reshape(g, expert_hidden)[slices]
  if noise_std > 0:
    k1, k2 = jax.random.split(key)
    w_enc = w_enc + noise_std * jnp.std(wi) * jax.random.normal(k1, w_enc.shape, w_enc.dtype)
    w_dec = w_dec + noise_std * g * jnp.std(wo) * jax.random.normal(k2, w_dec.shape, w_dec.dtype)
  return {"w_enc": w_enc, "b_enc": b_enc, "w_dec": w_dec, "b_dec": bo}
