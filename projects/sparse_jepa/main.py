"""Train or evaluate I-JEPA / SparseJEPA.

  python projects/sparse_jepa/main.py \
      --config projects/sparse_jepa/configs/mnist_demo.py:sparse --workdir /tmp/sj_sparse
"""
from common.train import main

if __name__ == "__main__":
  main.run("sparse_jepa")
