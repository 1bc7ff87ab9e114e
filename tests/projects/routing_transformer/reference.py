"""Dense numpy references for the Routing Transformer's heads, written from the spec's equations.

Every reference builds an explicit [n, n] mask (and relative-distance matrix) per head and runs
plain masked softmax attention, so it shares no indexing code with the model.
"""
import numpy as np


def softmax_attend(q, k, v, mask, rel=None, rel_k=None, rel_v=None):
  """q, k, v [n, d]; mask [n, n] bool; rel int [n, n] index into rel_k / rel_v [R, d]."""
  logits = q @ k.T
  if rel is not None:
    logits = logits + np.einsum("id,ijd->ij", q, rel_k[rel])
  logits = np.where(mask, logits, -1e9)
  logits = logits - logits.max(-1, keepdims=True)
  p = np.exp(logits) * mask
  p = p / np.maximum(p.sum(-1, keepdims=True), 1e-30)
  out = p @ v
  if rel is not None:
    out = out + np.einsum("ij,ijd->id", p, rel_v[rel])
  return out


def layer_norm(x, eps=1e-6):
  x = x.astype(np.float64)
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps)


def routing_head(x, v, means, window, max_rel=0, rel_k=None, rel_v=None, mask_self=False,
                 scale=1.0):
  """One routing head. x = LN(q) [n, d] (shared q/k), v [n, d], means [K, d] -> [n, d].

  Cluster c holds its `window` highest-scoring positions; inside it a query attends causally to
  members (with `mask_self`, to earlier members only, unless it is the cluster's earliest);
  with relative positions the distance is the rank difference inside the cluster. Logits are
  scaled by `scale`. Outputs are summed over the clusters a token belongs to and divided by
  (count + 1e-2).
  """
  n, d = x.shape
  scores = x @ means.T
  out = np.zeros((n, d))
  count = np.zeros(n)
  causal = np.tril(np.ones((n, n), bool), k=-1 if mask_self else 0)
  for c in range(means.shape[0]):
    member = np.zeros(n, bool)
    member[np.argsort(-scores[:, c], kind="stable")[:window]] = True
    first = np.eye(n, dtype=bool) & (member & (np.cumsum(member) == 1))[:, None]
    mask = member[:, None] & member[None, :] & (causal | first)
    rel = None
    if rel_k is not None:
      rank = np.cumsum(member) - 1
      rel = np.clip(rank[None, :] - rank[:, None], -max_rel, max_rel) + max_rel
    o = softmax_attend(x * scale, x, v, mask, rel, rel_k, rel_v)
    out += o * member[:, None]
    count += member
  return out / (count[:, None] + 1e-2)


def local_head(q, k, v, block, flange, max_rel=0, rel_k=None, rel_v=None):
  """One local head: query i sees keys j <= i with j >= start of i's block - flange."""
  n = q.shape[0]
  i = np.arange(n)[:, None]
  j = np.arange(n)[None, :]
  mask = (j <= i) & (j >= (i // block) * block - flange)
  rel = None
  if rel_k is not None:
    rel = np.clip(j - i, -max_rel, max_rel) + max_rel
  return softmax_attend(q, k, v, mask, rel, rel_k, rel_v)
