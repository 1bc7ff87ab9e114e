"""Train or evaluate a MoE-X / Switch / dense GPT-2 language model.

  python projects/moex/main.py --config projects/moex/configs/chess.py:demo,moex \
      --workdir /tmp/moex_chess
"""
from common.train import main

if __name__ == "__main__":
  main.run("moex")
