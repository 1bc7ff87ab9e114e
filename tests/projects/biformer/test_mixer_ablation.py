"""The token-mixer ablation: BRA's local and all-regions forms, the registered super-token
mixer in a BiFormer block, the mnist_pairs canvases, and the demo's runs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from common.data.builders.mnist_pairs import mnist_pairs
from common.layers import spatial_mixers
from common.train import config_io
from projects.biformer import BiFormer, bra, config, demo
from projects.svit import stoken

ABLATION = "projects/biformer/configs/mixer_ablation.py"


def _bra(**kw):
  return bra.BiLevelRoutingAttention(16, num_heads=2, n_win=2, qk_dim=16, rngs=nnx.Rngs(0),
                                     **kw)


def test_local_routing_reads_its_own_region_only():
  attn = _bra(topk=1, side_dwconv=0, routing="local")  # no LePE: nothing crosses a region
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 16))
  out, r_idx = attn(x)
  np.testing.assert_array_equal(r_idx[0, :, 0], np.arange(4))
  moved, _ = attn(x.at[0, 1, 2].add(1.0))  # a pixel of region 0 (rows 0-3, columns 0-3)
  changed = np.abs(np.asarray(moved - out)).max(-1)[0] > 1e-6
  assert changed[:4, :4].any() and not changed[4:].any() and not changed[:, 4:].any()
  with pytest.raises(ValueError, match="topk must be 1"):
    _bra(topk=2, routing="local")
  with pytest.raises(ValueError, match="routing='dilated'"):
    _bra(topk=1, routing="dilated")


def test_all_regions_is_global_attention():
  # topk = n_win**2 runs as one block; the shared kernel gathers every region instead.
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 16))
  one_block = _bra(topk=4)
  gathered = _bra(topk=4, attention_impl="reference")
  with jax.default_matmul_precision("highest"):
    np.testing.assert_allclose(one_block(x)[0], gathered(x)[0], atol=2e-5)


def test_super_token_grid_equals_its_size():
  x = jax.random.normal(jax.random.key(2), (2, 8, 12, 16))
  by_grid = stoken.StokenAttention(16, grid=2, num_heads=2, rngs=nnx.Rngs(0))
  by_size = stoken.StokenAttention(16, (4, 6), num_heads=2, rngs=nnx.Rngs(0))
  np.testing.assert_allclose(by_grid(x), by_size(x), atol=1e-6)
  with pytest.raises(ValueError, match="grid=0"):
    stoken.StokenAttention(16, grid=0, rngs=nnx.Rngs(0))


def test_spatial_mixer_registry():
  assert "stoken" in spatial_mixers.names()
  with pytest.raises(ValueError, match=r"'swin' is not registered; choose one of \(.*'stoken'"):
    spatial_mixers.build("swin", spatial_mixers.SpatialSpec(16, 2, 2), nnx.Rngs(0))


SMALL = dict(depth=(1, 1, 1, 1), embed_dim=(16, 16, 16, 16), qk_dims=(16, 16, 16, 16),
             head_dim=8, topks=(1, 1, -2, -2), n_win=2, num_classes=3, layout="stl",
             before_attn_dwconv=0)


@pytest.mark.parametrize("mixer", ["local", "stoken"])
def test_biformer_runs_each_mixer(mixer):
  model = BiFormer(config.BiFormerConfig(mixer=mixer, **SMALL), rngs=nnx.Rngs(0))
  logits, feats = model(jnp.ones((2, 32, 32, 3)), return_features=True)
  assert logits.shape == (2, 3) and np.isfinite(np.asarray(logits)).all()
  # the router's indices are kept for BRA's forms only
  assert set(feats.r_idx) == ({"0.0", "1.0"} if mixer == "local" else set())


def test_mixer_config_errors():
  with pytest.raises(ValueError, match=r"mixer='swin': allowed are \('bra', 'local', .*'stoken'"):
    config.BiFormerConfig(mixer="swin", **SMALL)
  with pytest.raises(ValueError, match="qk_dims must equal embed_dim"):
    config.BiFormerConfig(mixer="stoken", **{**SMALL, "qk_dims": (8, 16, 16, 16)})


def test_ablation_variants_differ_only_in_the_mixer():
  configs = {v: config_io.load_config(f"{ABLATION}:{v},tiny") for v in demo.MIXERS}
  base = configs["top4"].to_dict()
  for variant, c in configs.items():
    d = c.to_dict()
    arch, base_arch = d["model"].pop("arch"), dict(base["model"]["arch"])
    assert {k: v for k, v in d.items() if k != "model"} == \
        {k: v for k, v in base.items() if k != "model"}
    assert d["model"] == {k: v for k, v in base["model"].items() if k != "arch"}
    differing = {k for k in arch if arch[k] != base_arch[k]}
    assert differing <= {"mixer", "topks"}, variant
  assert configs["all"].model.arch.topks == (49, 49, 49, -2)
  assert configs["local"].model.arch.mixer == "local"


def test_pairs_are_far_apart_and_labelled_by_the_larger():
  rng = np.random.default_rng(0)
  images = rng.integers(1, 256, (20, 28, 28, 1)).astype(np.uint8)  # no zero pixel
  labels = np.arange(20) % 10
  data = mnist_pairs.compose(images, labels, 30, seed=3)
  assert data["image"].shape == (30, 112, 112, 1)
  np.testing.assert_array_equal(data["label"], np.maximum(data["label_a"], data["label_b"]))
  filled = data["image"][..., 0] > 0
  quads = filled.reshape(30, 2, 56, 2, 56).all(axis=(2, 4))  # [top/bottom, left/right]
  # one digit top, one bottom, in diagonally opposite quadrants; the rest black
  assert (quads.sum(axis=(1, 2)) == 2).all() and (quads[:, 0] != quads[:, 1]).all()
  assert filled.sum() == 30 * 2 * 56 * 56
  again = mnist_pairs.compose(images, labels, 30, seed=3)
  np.testing.assert_array_equal(again["image"], data["image"])


def test_ablation_demo_trains_each_mixer_and_seed_once(monkeypatch, tmp_path):
  seen = []

  def fake_train(c, workdir):
    seen.append((workdir, c.seed, c.model.arch.mixer))
    return {"eval/classification/test/accuracy": 0.5 + 0.1 * c.seed,
            "eval/throughput/images_per_s": 100.0}

  monkeypatch.setattr(demo.demo_runs, "train_or_reuse", fake_train)
  monkeypatch.setattr(demo.demo_runs, "median_step_time", lambda w: 0.2)
  monkeypatch.setattr(demo.demo_runs, "train_step_cost", lambda c: {"flops": 3e9})
  monkeypatch.setattr(demo.demo_runs, "count_params", lambda c: 1000)
  rows = demo.ablation(str(tmp_path))
  assert len(rows) == len(demo.MIXERS) and len(seen) == 3 * len(demo.MIXERS)
  assert len({w for w, _, _ in seen}) == len(seen)
  assert rows[0]["measured"] == "60.0 ± 10.0% / 3.0 / 1,000 / 200 ± 0 / 100 ± 0"
  assert {m for _, _, m in seen} == {"bra", "local", "stoken"}
