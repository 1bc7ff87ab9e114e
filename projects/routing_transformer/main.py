"""Train or evaluate the Routing Transformer LM.

  python projects/routing_transformer/main.py \
      --config projects/routing_transformer/configs/stdlib_demo.py:demo --workdir /tmp/rt_demo
"""
from common.train import main

if __name__ == "__main__":
  main.run("routing_transformer")
