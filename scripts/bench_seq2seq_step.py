#!/usr/bin/env python
"""One seq2seq training step (forward, backward, AdamW): genbert's encoder-decoder vs
transformers' EncoderDecoderModel on the same bert2bert weights, and genbert's prefix
(pseudo-mask) step.

All-MiniLM-L6 size (6+6 layers, hidden 384, 12 heads, vocab 30522; `--size bert-base` for the
GPU), random weights (seed 0), batch 16, sources of 64 tokens, targets of 8 to 24 tokens padded
to 24 with -100 in the labels, dropout off so that the losses can be compared. Each side is
called as a new user would: transformers with `labels` (it shifts them into decoder inputs
itself), genbert with `labels` and `compute_logits=False` (the vocabulary projection only where
a label exists). Both use `torch.optim.AdamW(lr=1e-4)` (`--fused`: the fused AdamW, for both).
The first step's losses must agree within 1e-4 in float32 (exit status 1 otherwise). Also
genbert's prefix-scheme step with the s2s-ft pseudo-mask objective on the same pairs (tokens/s).
`--dtype bfloat16` runs everything under bf16 autocast (float32 master weights). FLOPs are those
each step executes (torch's flop counter), as TFLOP/s and model FLOPs utilisation (MFU).
"""
import argparse
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import bench_common as bc  # noqa: E402

PARITY_TOL = 1e-4
CLS, SEP, MASK, PAD = 101, 102, 103, 0


def reference(path: str, size: str):
    """Random bert2bert weights (seed 0) saved at `path`, and the transformers model itself."""
    from transformers import BertConfig, BertLMHeadModel, BertModel, EncoderDecoderModel
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = dict(**bc.SIZES[size], **bc.NO_DROPOUT)
    ref = EncoderDecoderModel(encoder=BertModel(BertConfig(**cfg)),
                              decoder=BertLMHeadModel(BertConfig(**cfg, is_decoder=True, add_cross_attention=True)))
    ref.config.decoder_start_token_id, ref.config.pad_token_id, ref.config.eos_token_id = CLS, PAD, SEP
    ref.save_pretrained(path)
    return ref


def pairs(b: int, s: int, t: int, vocab: int, min_target: int = 8) -> tuple[torch.Tensor, ...]:
    """Sources (B, s) all real, labels (B, t) with 8..t real ids then -100, and the id lists."""
    g = torch.Generator().manual_seed(1)
    low = max(MASK + 1, vocab // 30)
    ids = torch.randint(low, vocab - 1, (b, s), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    lengths = torch.randint(min(min_target, t), t + 1, (b,), generator=g)
    labels = torch.randint(low, vocab - 1, (b, t), generator=g)
    for i, n in enumerate(lengths.tolist()):
        labels[i, n - 1] = SEP
        labels[i, n:] = -100
    return ids, torch.ones_like(ids), labels, lengths


def make_step(model, opt, forward, dev: str, amp: bool):
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
            loss = forward()
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--source-length", type=int, default=64)
    p.add_argument("--target-length", type=int, default=24)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", default="minilm", choices=sorted(bc.SIZES))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--fused", action="store_true", help="fused AdamW (for both)")
    p.add_argument("--no-prefix", action="store_true", help="skip the prefix (pseudo-mask) step")
    p.add_argument("--output-dir", default="docs/benchmarks")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    dev, tag = a.device, bc.device_tag(a.device)
    if tag == "cpu":
        torch.set_num_threads(a.threads)
    from genbert import GenBert, GenBertConfig
    from genbert.data.objectives import Seq2SeqCollator, SpecialIds
    sync, amp = bc.sync_fn(dev), a.dtype != "float32"
    size = bc.SIZES[a.size]
    vocab = size["vocab_size"]
    with tempfile.TemporaryDirectory() as d:
        ref = reference(d, a.size)
        ours = GenBert.from_pretrained(d)
    models = {"transformers": ref.to(dev).train(), "genbert": ours.to(dev).train()}
    ids, am, labels, lengths = (x.to(dev) for x in pairs(a.batch, a.source_length, a.target_length, vocab))
    forwards = {
        "transformers": lambda: models["transformers"](input_ids=ids, attention_mask=am, labels=labels).loss,
        "genbert": lambda: models["genbert"](ids, attention_mask=am, labels=labels, compute_logits=False).loss,
    }
    real_tokens = a.batch * a.source_length + int(lengths.sum())
    if not a.no_prefix:
        torch.manual_seed(0)
        cfg = GenBertConfig(**size, **bc.NO_DROPOUT, mask_scheme="prefix", objective="pseudo-mask",
                            decoding="mask-predict", max_position_embeddings=512,
                            cls_token_id=CLS, sep_token_id=SEP, mask_token_id=MASK, pad_token_id=PAD)
        models["genbert prefix (pseudo-mask)"] = GenBert(cfg).to(dev).train()
        coll = Seq2SeqCollator(SpecialIds(pad=PAD, cls=CLS, sep=SEP, mask=MASK, vocab_size=vocab), "pseudo-mask")
        cut = lambda row: [x for x in row.tolist() if x != -100][:-1]  # noqa: E731 (the collator adds [SEP])
        batch = coll([(row[1:-1].tolist(), cut(lab)) for row, lab in zip(ids.cpu(), labels.cpu())])
        batch = {k: v.to(dev) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        forwards["genbert prefix (pseudo-mask)"] = (
            lambda: models["genbert prefix (pseudo-mask)"](**batch, compute_logits=False).loss)
    opts = {w: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True if a.fused else None) for w, m in models.items()}
    steps = {w: make_step(models[w], opts[w], forwards[w], dev, amp) for w in models}
    first = {w: float(steps[w]()) for w in steps}  # step 1: the losses on identical weights
    flops = {w: bc.count_flops(steps[w]) for w in steps}
    med = bc.interleaved_medians(steps, a.steps, sync)
    diff = abs(first["genbert"] - first["transformers"])
    parity = diff <= PARITY_TOL
    dt = torch.bfloat16 if amp else torch.float32
    peak = bc.matmul_tflops(dev, dt)
    util = {w: bc.utilisation(flops[w], med[w], dev, dt, peak) for w in steps}
    speedup = med["transformers"] / med["genbert"]
    machine = bc.machine_name(dev, a.threads if tag == "cpu" else None)
    res = {"machine": machine, "size": a.size, "dtype": a.dtype, "fused_adamw": a.fused, "batch": a.batch,
           "source_length": a.source_length, "target_length": a.target_length,
           "target_lengths": lengths.tolist(), "median_step_s": med, "speedup": speedup, "first_step_loss": first,
           "loss_abs_diff": diff, "loss_parity_tolerance": PARITY_TOL, "loss_parity": parity,
           "tokens_per_s": {w: real_tokens / med[w] for w in med}, "flops_per_step": flops,
           "utilisation": util, "steps": a.steps, "versions": bc.versions()}
    v = bc.versions()
    flags = " ".join(f for f in (f"--device {dev}", f"--size {a.size}" if a.size != "minilm" else "",
                                 f"--dtype {a.dtype}" if amp else "", "--fused" if a.fused else "") if f)
    md = (f"# Seq2seq training step ({tag}, {a.dtype})\n\nCommand: `python scripts/bench_seq2seq_step.py {flags}`\n\n"
          f"Machine: {machine}; torch {v['torch']}, transformers {v.get('transformers')}. {a.size} size "
          f"(bert2bert, {size['num_hidden_layers']}+{size['num_hidden_layers']} layers), random weights, batch "
          f"{a.batch}, sources {a.source_length} tokens, targets {int(lengths.min())}-{int(lengths.max())} tokens "
          f"padded to {a.target_length} (-100 in the labels), dropout off, {'fused ' if a.fused else ''}AdamW, "
          f"{a.dtype}{' autocast' if amp else ''}, median of {a.steps} steps (interleaved). Tokens/s counts the "
          f"real source and target tokens ({real_tokens} a step).\n\n"
          "| | step time (s) | speedup vs transformers | tokens/s | loss, first step | FLOPs executed per step (G) "
          "| utilisation |\n|---|---|---|---|---|---|---|\n")
    for w in steps:
        sp = med["transformers"] / med[w]
        md += (f"| {w} | {med[w]:.3f} | {'–' if w == 'transformers' else f'**{sp:.2f}x**'} | "
               f"{real_tokens / med[w]:.0f} | {first[w]:.6f} | {flops[w] / 1e9:.1f} | {bc.mfu_text(util[w])} |\n")
    bound = flops["transformers"] / flops["genbert"]
    res["flop_ratio"] = bound
    md += (f"\nLoss parity (genbert encoder-decoder vs transformers, first step): |diff| = {diff:.2e} "
           f"({'within' if parity else 'NOT within'} {PARITY_TOL:g}).\n\nFLOP bound: transformers executes "
           f"{bound:.2f}x genbert's FLOPs per step (genbert skips the vocabulary projection of the -100 "
           f"positions; every other product is the same), so where both run their matrix products equally "
           f"well genbert's step can be at most about {bound:.2f}x faster, plus what it saves around them.\n")
    bc.write_report(a.output_dir, bc.report_name("seq2seq_step", dev, a.size, a.dtype), md, res)
    print(md)
    return 0 if parity or amp else 1


if __name__ == "__main__":
    sys.exit(main())
