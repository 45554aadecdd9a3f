#!/usr/bin/env python
"""Render the attention-mask schemes for one example input to docs/masks.png."""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genbert import masks  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--output", default="docs/masks.png")
    a = p.parse_args()
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]", "cat", "sits", "[SEP]", "[PAD]"]
    tt = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 0]])
    am = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0]])
    ids = torch.zeros_like(am)
    schemes = ["bidirectional", "causal", "prefix"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    for ax, name in zip(axes, schemes):
        m = masks.build_mask(name, ids, am, tt)[0].int()
        ax.imshow(m, cmap="Blues", vmin=0, vmax=1.3)
        ax.set_title(name, fontsize=13)
        ax.set_xticks(range(len(tokens)), tokens, rotation=60, fontsize=8)
        ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
        ax.set_xlabel("key (attended to)")
        ax.axvline(4.5, color="grey", lw=0.8, ls="--")
        ax.axhline(4.5, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("query")
    fig.suptitle("genbert attention masks (blue = may attend); source | target split by the dashed line")
    fig.tight_layout()
    os.makedirs(os.path.dirname(a.output) or ".", exist_ok=True)
    fig.savefig(a.output, dpi=110)
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
