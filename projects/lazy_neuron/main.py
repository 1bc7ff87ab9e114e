"""Train or evaluate the Lazy Neuron models (ViT / T5 with ReLU and Top-k MLPs).

  python projects/lazy_neuron/main.py \
      --config projects/lazy_neuron/configs/vit_mnist.py:demo,topk --workdir /tmp/ln_topk
"""
from common.train import main

if __name__ == "__main__":
  main.run("lazy_neuron")
