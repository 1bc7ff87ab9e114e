"""Task families that several projects share, built on the trainer's `Task` contract.

  image.py        image classification: a paper model or the plain ViT baseline, Mixup/CutMix,
                  label smoothing, masked evaluation loss (svit, biformer)
  image_configs.py  that family's config.model fields and config builders: the MNIST 'paper
                  model vs ViT' demo config, the DeiT-style ImageNet-1k recipe
  image_convert.py  convert.py --to_checkpoint of that family: converted official weights ->
                  a step-0 checkpoint under an eval-only config
  image_demo.py   the svit / biformer demo rows: paper model vs the ViT baseline
  lm.py           language modelling: token weights, masked cross-entropy, prompt continuation
                  (moex, monet, routing_transformer, sea)
  demo_runs.py    what every projects/<name>/demo.py uses: finished runs reused, runs shared
                  between demos

Dependencies: tasks -> train, eval, data, layers; nothing in common/train or common/eval imports
this package.
"""
