"""Train or evaluate BiFormer (and the demo's ViT baseline).

  python projects/biformer/main.py \
      --config projects/biformer/configs/mnist_demo.py:biformer --workdir /tmp/biformer_demo
"""
from common.train import main

if __name__ == "__main__":
  main.run("biformer")
