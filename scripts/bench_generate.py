#!/usr/bin/env python
"""Decoding speed: genbert.generate vs transformers' generate on the same bert2bert weights.

All-MiniLM-L6 size (6+6 layers, hidden 384, 12 heads, vocab 30522, random weights), batch 8,
sources of 256 tokens (some right-padded), 64 new tokens (min = max, so both decode the full
length), greedy and beam 4; identical tokens are checked. Also the prefix (UniLM) scheme at the
same size, tokens/s, and the time the model's FLOPs would take at the machine's measured matmul
throughput (the compute limit). Writes a markdown table and JSON (default docs/benchmarks/).

On CPU, in the same run: genbert with int8 weights (`model.quantize("int8")`) against
transformers' float32 generate, with the share of outputs identical to genbert's float32 ones;
and CTranslate2 (`pip install ctranslate2`, skipped with a line saying so when absent) in float32
and int8 on a same-size BART with random weights (its converter cannot express BERT's LM-head
transform, dense + GELU + LayerNorm before the vocabulary projection, so a converted genbert model
is not possible), as the reference of what this machine allows. `--dtype bfloat16` (GPU) casts
both models to bf16.
"""
import argparse
import os
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

import bench_common as bc  # noqa: E402
from bench_common import timed  # noqa: E402
from genbert import GenBert, GenBertConfig  # noqa: E402


def generate_flops(real_lengths, new, beams, h, inter, layers, vocab, decoder: bool) -> float:
    """Matmul FLOPs of one generate call (encoder or prefill once, then `new` cached steps)."""
    layer = 2 * (4 * h * h + 2 * h * inter)  # per token: q,k,v,o and the FFN
    f = 0.0
    for s in real_lengths:
        f += s * layers * layer + layers * 4 * s * s * h  # source encoding (+ attention scores/values)
        if decoder:
            f += layers * 2 * 2 * h * h * s  # cross-attention keys/values, once
        for t in range(new):
            ctx = t + 1 if decoder else s + t + 1
            per_tok = layers * (layer + 4 * ctx * h) + 2 * h * h + 2 * h * vocab
            if decoder:
                per_tok += layers * (2 * 2 * h * h + 4 * s * h)  # cross q/o + attention over the source
            f += beams * per_tok
    return f


def memory_floor(model, ids, am, new: int, encode_limit_s: float, repeats: int, sync) -> dict:
    """Greedy decoding's floor on this machine: encoding the sources at the compute limit, then
    `new` steps that each only read, once, the bytes every step must read (decoder weights, the
    vocabulary projection, the cross-attention keys/values). Reading is timed as a sum over them."""
    with torch.inference_mode():
        memory = model.decoder.precompute_cross(model.encode(ids, am))
        tensors = [m.weight for m in model.decoder.modules() if isinstance(m, torch.nn.Linear)]
        tensors += [model.decoder.lm_head.weight] + [t for kv in memory for t in kv]
        t_read, _ = timed(lambda: [t.sum() for t in tensors], max(repeats, 5), sync)
    step_bytes = sum(t.numel() * t.element_size() for t in tensors)
    return dict(encode_limit_s=encode_limit_s, step_mb=step_bytes / 1e6, read_gb_per_s=step_bytes / t_read / 1e9,
                floor_s=encode_limit_s + new * t_read)


def ctranslate2_rows(size: dict, ids, am, n: int, threads: int, repeats: int, t_ref: dict) -> tuple[list, list]:
    """CTranslate2 float32 and int8 on a same-size BART with random weights (rows, results), or a
    line saying why not."""
    try:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
    except ImportError:
        return ["| CTranslate2 | – | skipped: `ctranslate2` is not installed (pip install ctranslate2) | | | | | |"], []
    from transformers import BartConfig, BartForConditionalGeneration, BertTokenizerFast
    h, layers, heads, inter, vocab = (size[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                       "intermediate_size", "vocab_size"))
    rows, results = [], []
    with tempfile.TemporaryDirectory() as d:
        torch.manual_seed(0)
        # post-LN like BERT; the keys its converter still reads (transformers 5 dropped them from BartConfig)
        cfg = BartConfig(vocab_size=vocab, d_model=h, encoder_layers=layers, decoder_layers=layers,
                         encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=inter,
                         decoder_ffn_dim=inter, max_position_embeddings=512, activation_function="gelu",
                         pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
                         normalize_before=False, add_final_layer_norm=False, static_position_embeddings=False)
        BartForConditionalGeneration(cfg).save_pretrained(os.path.join(d, "hf"))
        tokens = ["<s>", "<pad>", "</s>", "<unk>"] + [f"t{i}" for i in range(4, vocab)]
        BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)}, unk_token="<unk>", pad_token="<pad>",
                          cls_token="<s>", sep_token="</s>", mask_token="<unk>", bos_token="<s>",
                          eos_token="</s>").save_pretrained(os.path.join(d, "hf"))
        # the same sources (real tokens only: CTranslate2 pads itself), ending in </s>
        src = [[f"t{int(i)}" for i in row[:int(m.sum())].tolist()[:-1]] + ["</s>"] for row, m in zip(ids.cpu(), am.cpu())]
        for q in ("float32", "int8"):
            out = os.path.join(d, f"ct2_{q}")
            TransformersConverter(os.path.join(d, "hf")).convert(out, quantization=None if q == "float32" else q,
                                                                 force=True)
            tr = ctranslate2.Translator(out, device="cpu", compute_type=q, intra_threads=threads, inter_threads=1)
            for beams in (1, 4):
                def run():
                    return tr.translate_batch(src, beam_size=beams, max_decoding_length=n, min_decoding_length=n,
                                              max_batch_size=len(src))
                run()  # warm-up
                t, _ = timed(run, repeats, lambda: None)
                name = "greedy" if beams == 1 else f"beam {beams}"
                results.append(dict(model=f"CTranslate2 BART {q}", strategy=name, seconds=t,
                                    speedup_vs_transformers_float32=t_ref[beams] / t, tokens_per_s=len(src) * n / t))
                rows.append(f"| CTranslate2 {q} (same-size BART, random weights) | {name} | {t_ref[beams]:.3f} | "
                            f"{t:.3f} | **{t_ref[beams] / t:.2f}x** | – | {len(src) * n / t:.0f} | – |")
                print(rows[-1], flush=True)
    return rows, results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--source-length", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--size", default="minilm", choices=sorted(bc.SIZES), help="model size (tiny: for tests)")
    p.add_argument("--no-int8", action="store_true", help="skip genbert's int8 rows (CPU)")
    p.add_argument("--no-ctranslate2", action="store_true", help="skip the CTranslate2 rows (CPU)")
    p.add_argument("--no-prefix", action="store_true", help="skip the prefix (UniLM) rows")
    p.add_argument("--output-dir", default="docs/benchmarks")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    dev, tag = a.device, bc.device_tag(a.device)
    if tag == "cpu":
        torch.set_num_threads(a.threads)
    sync = bc.sync_fn(dev)
    dtype = getattr(torch, a.dtype)
    size = bc.SIZES[a.size]
    h, inter, layers, vocab = (size[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"))

    ref, ours = bc.bert2bert_pair(size)
    int8 = None
    if tag == "cpu" and a.dtype == "float32" and not a.no_int8:
        from genbert import quantize
        int8 = ours.quantize("int8") if quantize.available() else None
    ref = ref.to(dev, dtype).eval()
    ours = ours.to(dev, dtype).eval()

    b, s, n = a.batch, a.source_length, a.new_tokens
    ids, am, lengths = bc.decoding_sources(vocab, b, s)
    ids, am = ids.to(dev), am.to(dev)

    peak = bc.matmul_tflops(dev, dtype) * 1e3
    encode_limit = generate_flops(lengths, 0, 1, h, inter, layers, vocab, decoder=True) / (peak * 1e9)
    floor = memory_floor(ours, ids, am, n, encode_limit, a.repeats, sync)
    rows, results = [], {"device": dev, "threads": a.threads if tag == "cpu" else None, "dtype": a.dtype,
                         "size": a.size, "matmul_gflops": round(peak, 1), "runs": []}
    def side_by_side(x, m, kw) -> tuple[float, float, bool, torch.Tensor]:
        """transformers' and genbert's generate on the same sources: (median seconds of each,
        identical tokens, genbert's tokens)."""
        def run_ref():
            with torch.inference_mode():
                return ref.generate(input_ids=x, attention_mask=m, do_sample=False, decoder_start_token_id=101,
                                    eos_token_id=102, pad_token_id=0, **kw)[:, 1:]
        def run_ours():
            return ours.generate(x, m, **kw)
        run_ref(), run_ours()  # warm-up
        t_r, r = timed(run_ref, a.repeats, sync)
        t_o, o = timed(run_ours, a.repeats, sync)
        return t_r, t_o, torch.equal(o.cpu(), r.cpu()), o

    t_ref = {}
    for beams in (1, 4):
        kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
        t_ref[beams], t_ours, same, o = side_by_side(ids, am, kw)
        flops = generate_flops(lengths, n, beams, h, inter, layers, vocab, decoder=True)
        limit = flops / (peak * 1e9)
        name = "greedy" if beams == 1 else f"beam {beams}"
        results["runs"].append(dict(model="bert2bert", strategy=name, transformers_s=t_ref[beams], genbert_s=t_ours,
                                    speedup=t_ref[beams] / t_ours, identical_tokens=same, tokens_per_s=b * n / t_ours,
                                    compute_limit_s=limit, fraction_of_limit=limit / t_ours))
        if beams == 1:
            floor["best_possible_speedup"] = t_ref[beams] / floor["floor_s"]
            results["greedy_memory_floor"] = floor
        rows.append(f"| bert2bert | {name} | {t_ref[beams]:.3f} | {t_ours:.3f} | **{t_ref[beams] / t_ours:.2f}x** | "
                    f"{same} | {b * n / t_ours:.0f} | {limit:.3f} ({100 * limit / t_ours:.0f}%) |")
        print(rows[-1], flush=True)
        if int8 is not None:
            int8.generate(ids, am, **kw)  # warm-up
            t8, o8 = timed(lambda: int8.generate(ids, am, **kw), a.repeats, sync)
            o8, o32 = o8.cpu(), o.cpu()
            rows_same = float((o8 == o32).all(1).float().mean()) if o8.shape == o32.shape else 0.0
            tok_same = float((o8 == o32).float().mean()) if o8.shape == o32.shape else 0.0
            results["runs"].append(dict(model="bert2bert int8", strategy=name, transformers_s=t_ref[beams],
                                        genbert_s=t8, speedup=t_ref[beams] / t8, tokens_per_s=b * n / t8,
                                        rows_identical_to_float32=rows_same, tokens_identical_to_float32=tok_same))
            rows.append(f"| bert2bert, genbert int8 | {name} | {t_ref[beams]:.3f} | {t8:.3f} | "
                        f"**{t_ref[beams] / t8:.2f}x** | {100 * rows_same:.0f}% of rows, {100 * tok_same:.0f}% of "
                        f"tokens = genbert float32's | {b * n / t8:.0f} | – |")
            print(rows[-1], flush=True)
    # batch 1 latency: one source (the first, unpadded row), as a user calling generate on one article
    for beams in (1, 4):
        kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
        t_r1, t_o1, same, _ = side_by_side(ids[:1], am[:1], kw)
        name = "greedy" if beams == 1 else f"beam {beams}"
        results["runs"].append(dict(model="bert2bert", strategy=name, batch=1, transformers_s=t_r1, genbert_s=t_o1,
                                    speedup=t_r1 / t_o1, identical_tokens=same, tokens_per_s=n / t_o1))
        rows.append(f"| bert2bert, batch 1 (latency) | {name} | {t_r1:.3f} | {t_o1:.3f} | **{t_r1 / t_o1:.2f}x** | "
                    f"{same} | {n / t_o1:.0f} | – |")
        print(rows[-1], flush=True)
    if tag == "cpu" and a.dtype == "float32" and not a.no_ctranslate2:
        ct_rows, ct_results = ctranslate2_rows(size, ids, am, n, a.threads, a.repeats, t_ref)
        rows += ct_rows
        results["runs"] += ct_results
        if not ct_results:
            print(ct_rows[0], flush=True)

    if not a.no_prefix:
        cfg = GenBertConfig(**size, mask_scheme="prefix", max_position_embeddings=512)
        torch.manual_seed(0)
        prefix = GenBert(cfg).to(dev, dtype).eval()
        for beams in (1, 4):
            kw = dict(max_new_tokens=n, min_new_tokens=n, num_beams=beams)
            prefix.generate(ids, am, **kw)
            t, _ = timed(lambda: prefix.generate(ids, am, **kw), a.repeats, sync)
            flops = generate_flops(lengths, n, beams, h, inter, layers, vocab, decoder=False)
            limit = flops / (peak * 1e9)
            name = "greedy" if beams == 1 else f"beam {beams}"
            results["runs"].append(dict(model="prefix", strategy=name, genbert_s=t, tokens_per_s=b * n / t,
                                        compute_limit_s=limit, fraction_of_limit=limit / t))
            rows.append(f"| prefix (UniLM) | {name} | – | {t:.3f} | – | – | {b * n / t:.0f} | "
                        f"{limit:.3f} ({100 * limit / t:.0f}%) |")
            print(rows[-1], flush=True)

    machine = bc.machine_name(dev, a.threads if tag == "cpu" else None)
    results["machine"] = machine
    results["versions"] = v = bc.versions()
    head = (f"Machine: {machine}; {a.dtype}; torch {v['torch']}, transformers {v.get('transformers')}; "
            f"matmul throughput {peak:.0f} GFLOP/s (2048² matmul).\n"
            f"{a.size} size, batch {b}, sources {s} tokens (real lengths {lengths}), {n} new tokens, median of "
            f"{a.repeats}.\n\n"
            "| model | strategy | transformers float32 (s) | genbert (s) | speedup | identical tokens | "
            "tokens/s | compute limit (s) (% reached) |\n|---|---|---|---|---|---|---|---|\n")
    fl = floor
    note = (f"\n\nGreedy memory floor: encoding needs {fl['encode_limit_s']:.3f} s at the compute limit, and every "
            f"step must read "
            f"{fl['step_mb']:.0f} MB (decoder weights, vocabulary projection, cross-attention keys/values) at the "
            f"{fl['read_gb_per_s']:.1f} GB/s this machine reads them, so greedy decoding cannot take less than "
            f"{fl['floor_s']:.3f} s here in {a.dtype}: at most {fl['best_possible_speedup']:.2f}x faster than "
            f"transformers.\n")
    if int8 is not None:
        note += ("\nint8 rows: `model.quantize(\"int8\")` (int8 weights per channel, dynamic int8 activations, "
                 "PyTorch's fbgemm/x86 kernels); the transformers column is float32, from the same run. "
                 "Identical tokens compare with genbert's float32 output on these random weights; "
                 "`scripts/bench_int8.py` measures quality on trained models.\n")
    if any(r.startswith("| CTranslate2 float32") for r in rows):
        note += ("\nCTranslate2 rows: a BART of the same size (layers, hidden, heads, feed-forward, vocabulary) with "
                 "random weights, converted by its TransformersConverter (a genbert model cannot be converted: "
                 "CTranslate2's decoder has no place for BERT's LM-head transform), decoding the same source "
                 "tokens to the same length with the same threads.\n")
    flags = " ".join(f for f in (f"--device {dev}", f"--threads {a.threads}" if tag == "cpu" else "",
                                 f"--dtype {a.dtype}" if a.dtype != "float32" else "",
                                 f"--size {a.size}" if a.size != "minilm" else "") if f)
    md = (f"# Decoding speed ({tag}, {a.dtype})\n\nCommand: `python scripts/bench_generate.py {flags}`\n\n"
          + head + "\n".join(rows) + note)
    path = bc.write_report(a.output_dir, bc.report_name("generate", dev, a.size, a.dtype), md, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
