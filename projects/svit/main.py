"""Train or evaluate SViT / STViT (and the demo's ViT baseline).

  python projects/svit/main.py \
      --config projects/svit/configs/mnist_demo.py:svit --workdir /tmp/svit_demo
"""
from common.train import main

if __name__ == "__main__":
  main.run("svit")
