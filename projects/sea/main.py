"""Train or evaluate SEA (dense OPT teachers and SEA students).

  python projects/sea/main.py \
      --config projects/sea/configs/stdlib_demo.py:teacher --workdir /tmp/sea/teacher
"""
from common.train import main

if __name__ == "__main__":
  main.run("sea")
