"""Train or evaluate Monet (Mixture of Monosemantic Experts).

  python projects/monet/main.py \
      --config projects/monet/configs/stdlib_demo.py:demo --workdir /tmp/monet_demo
"""
from common.train import main

if __name__ == "__main__":
  main.run("monet")
