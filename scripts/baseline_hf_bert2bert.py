#!/usr/bin/env python
"""Reference point: transformers' bert2bert (EncoderDecoderModel warm-started from the same
checkpoint on both sides) fine-tuned on the BBC headlines with the same budget as a genbert run
(default one epoch at batch 16), then scored with genbert's ROUGE on the validation split.

Labels use -100 on padding (the documented transformers usage), greedy decoding; outputs are
detokenized as genbert's are (genbert.detokenize).
"""
import argparse
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-source-length", type=int, default=128)
    p.add_argument("--max-target-length", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="docs/baseline_hf_bert2bert.json")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    from transformers import BertTokenizerFast, EncoderDecoderModel
    from transformers.utils import logging as hf_logging
    from genbert.data.datasets import load_named
    from genbert.detokenize import detokenize, wordpiece_words
    from genbert.hub import minilm_path
    from genbert.metrics import rouge_scores, summarization_baselines
    hf_logging.set_verbosity_error()
    torch.manual_seed(a.seed)
    path = str(minilm_path())
    tok = BertTokenizerFast.from_pretrained(path)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(path, path)
    model.config.decoder_start_token_id = tok.cls_token_id
    model.config.pad_token_id = tok.pad_token_id
    model.config.eos_token_id = tok.sep_token_id
    train, val = load_named("bbc-headlines", "train"), load_named("bbc-headlines", "validation")
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    steps = int(len(train) * a.epochs) // a.batch_size
    order = torch.randperm(len(train)).tolist()
    model.train()
    t0 = time.time()
    for step in range(steps):
        rows = [train[order[(step * a.batch_size + i) % len(train)]] for i in range(a.batch_size)]
        enc = tok([r["source"] for r in rows], truncation=True, max_length=a.max_source_length, padding=True,
                  return_tensors="pt")
        lab = tok([r["target"] for r in rows], truncation=True, max_length=a.max_target_length, padding=True,
                  return_tensors="pt").input_ids[:, 1:]  # drop [CLS]: the decoder starts from it
        lab = lab.masked_fill(lab == tok.pad_token_id, -100)
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=lab).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 20 == 0:
            print(f"step {step}/{steps} loss {loss.item():.3f}", flush=True)
    train_s = time.time() - t0
    model.eval()
    preds = []
    with torch.inference_mode():
        for i in range(0, len(val), 32):
            rows = val[i:i + 32]
            enc = tok([r["source"] for r in rows], truncation=True, max_length=a.max_source_length, padding=True,
                      return_tensors="pt")
            out = model.generate(**enc, max_new_tokens=a.max_target_length, num_beams=1,
                                 decoder_start_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                 pad_token_id=tok.pad_token_id)
            # the text genbert's TextGenerator writes: punctuation rejoined ("e-cigarette", "don't")
            preds += [detokenize(wordpiece_words(tok.convert_ids_to_tokens(row, skip_special_tokens=True)))
                      for row in out.tolist()]
    refs = [r["target"] for r in val]
    res = {"scores": rouge_scores(preds, refs),
           "baselines": summarization_baselines([r["source"] for r in val], refs),
           "settings": {**vars(a), "steps": steps, "train_seconds": round(train_s, 1)},
           "examples": [{"prediction": p_, "reference": r} for p_, r in zip(preds[:5], refs[:5])]}
    os.makedirs(os.path.dirname(a.output) or ".", exist_ok=True)
    with open(a.output, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res["scores"], indent=1))
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
