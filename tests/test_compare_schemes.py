"""scripts/compare_schemes.py (genbert.recipes.compare) on a tiny transformers BERT checkpoint: every way,
a few steps; results resume; the report assembles partial results."""
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compare_schemes.py"

WORDS = ("the a of to in and on for with at by from is was are be has have said new year government minister "
         "police court bank market price rise fall sales profit shares company football club match win team "
         "player coach music film star award show game world cup league report plan tax oil jobs growth bbc "
         "news people city wins loses record open").split()


def _checkpoint(d: Path) -> Path:
    from transformers import BertConfig, BertForMaskedLM
    import torch
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    d.mkdir()
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    BertForMaskedLM(cfg).save_pretrained(d)
    return d


def _pairs(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        src = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 20)))
        tgt = " ".join(src.split()[:rng.randint(3, 6)])
        lines.append(json.dumps({"source": src, "target": tgt}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    return d, _checkpoint(d / "bert"), _pairs(d / "train.jsonl", 24, 0), _pairs(d / "valid.jsonl", 6, 1)


def test_every_way_resumes_and_reports(setup, capsys):
    from genbert.recipes.compare import WAY_NAMES, main
    d, ckpt, train, valid = setup
    out, work = d / "docs", d / "work"
    argv = ["--init", str(ckpt), "--train", str(train), "--validation", str(valid), "--max-steps", "2",
            "--batch-size", "4", "--max-source-length", "16", "--max-target-length", "6", "--limit-eval", "4",
            "--mlm-warmup-steps", "2", "--output-dir", str(out), "--work-dir", str(work), "--no-progress",
            "--device", "cpu", "--resamples", "50"]
    # a part first: two ways; the report holds what exists
    assert main(argv + ["--ways", "causal,bert2bert"]) == 0
    (report,) = json.loads((out / "comparison.json").read_text())["reports"]
    assert [w["name"] for w in report["ways"]] == ["causal", "bert2bert"]
    assert report["commands"] == ["python scripts/compare_schemes.py " + " ".join(argv + ["--ways",
                                                                                         "causal,bert2bert"])]
    done = {p.name: p.stat().st_mtime_ns for p in (out / "comparison").glob("*.json")}
    assert set(done) == {"summarization-causal-seed0.json", "summarization-bert2bert-seed0.json"}
    assert (work / "shared-mlm-warmup" / "final" / "config.json").is_file()  # computed once, shared
    capsys.readouterr()
    # then every way: the finished results are not redone, the warm-up is reused
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[causal] seed 0: done before" in printed and "shared MLM warm-up: reusing" in printed
    for name, mtime in done.items():
        assert (out / "comparison" / name).stat().st_mtime_ns == mtime
    md = (out / "comparison.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ")]
    for way in WAY_NAMES:
        assert sum(line.startswith(f"| {way} |") for line in table) == 2, way  # quality and costs
    assert any("lead-10 baseline" in line for line in table)
    assert "python scripts/compare_schemes.py --init" in md and "## Machine" in md and "95% CI" in md
    assert "(shared " in md and "The answer, read off the numbers" in md
    assert (out / "comparison.png").stat().st_size > 1000
    (report,) = json.loads((out / "comparison.json").read_text())["reports"]
    assert {w["name"] for w in report["ways"]} == set(WAY_NAMES)
    rec = json.loads((out / "comparison" / "summarization-causal-seed0.json").read_text())
    assert len(rec["validation"]["predictions"]) == len(rec["validation"]["per_example"]) == 4
    assert 0.0 <= rec["validation"]["repeated_content_words"] <= 1.0
    assert '"predictions"' not in (out / "comparison.json").read_text()  # the outputs stay in the results
    for w in report["ways"]:
        lo, hi = w["validation_rougeL_ci"]
        assert w["parameters"] and lo <= w["validation_rougeL_mean"] <= hi, w["name"]
        (s,) = w["seeds"]
        assert s["train_steps"] == 2 and s["decoding"] and s["costs"]["latency_b1_s"] > 0
        assert w["shared_warmup"] == (w["name"] != "random-init")
    best = [w for w in report["ways"] if "validation_vs_best" not in w]  # the one the others are set against
    assert len(best) == 1 and best[0]["validation_rougeL_mean"] == max(
        x["validation_rougeL_mean"] for x in report["ways"])
    by = {w["name"]: w for w in report["ways"]}
    assert by["random-init"]["parameters"] == by["prefix-pseudo-mask"]["parameters"]
    assert by["bert2bert"]["parameters"] > by["bertshare"]["parameters"]
    assert by["bidirectional-diffusion"]["seeds"][0]["decoding"]["steps"] >= 1
    # the search's second stage: every copy prior at the best first-stage setting
    from genbert.recipes.compare import COPY_GRID
    for w in report["ways"]:
        (s,) = w["seeds"]
        assert "copy_bias" in s["decoding"]
        assert {x["settings"]["copy_bias"] for x in s["search"]} == set(COPY_GRID)  # the default's among them
    assert report["budget"]["max_steps"] == 2 and "lead-10" in report["baselines"]["validation"]
    assert "The commands that produced these results" in md
    assert (work / "causal-seed0" / "final" / "generation.json").is_file()
    # the scheme-dependent defaults are stored resolved, as each run trained
    stored = {n: json.loads((work / f"{n}-seed0" / "comparison-trained.json").read_text())["recipe"]
              for n in ("causal", "bidirectional-diffusion", "prefix-pseudo-mask")}
    assert [r["freeze_vocabulary"] for r in stored.values()] == [False, True, True]
    assert not list(out.glob(".*.tmp"))
    # killed after training, before its result was written: only the decoding is redone
    result = out / "comparison" / "summarization-causal-seed0.json"
    before = json.loads(result.read_text())
    weights = work / "causal-seed0" / "final" / "model.safetensors"
    mtime = weights.stat().st_mtime_ns
    result.unlink()
    capsys.readouterr()
    assert main(argv + ["--ways", "causal"]) == 0
    assert "[causal] reusing the finished training run" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == mtime
    after = json.loads(result.read_text())
    assert after["validation"]["rougeL"] == before["validation"]["rougeL"] and after["train_s"] == before["train_s"]
    # another recipe in the same work directory: a one-line error, the finished run is kept
    capsys.readouterr()
    assert main(argv + ["--ways", "causal", "--lr", "1e-3", "--results-dir", str(d / "other")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a finished run of another recipe (--lr 0.0002 -> 0.001)" in err and len(err.splitlines()) == 1
    assert weights.stat().st_mtime_ns == mtime
    # and a new work directory trains it
    assert main(argv + ["--ways", "causal", "--lr", "1e-3", "--results-dir", str(d / "other"),
                        "--work-dir", str(d / "work-lr")]) == 0
    assert (d / "work-lr" / "causal-seed0" / "final" / "model.safetensors").is_file()


@pytest.mark.parametrize("args, words", [
    (["--ways", "prefix,nope"], "--ways"),
    (["--max-steps", "0"], "--max-steps"),
    (["--bogus"], "unrecognized"),
])
def test_bad_flags(setup, args, words):
    d, ckpt, train, valid = setup
    p = subprocess.run([sys.executable, str(SCRIPT), "--init", str(ckpt), "--train", str(train), "--validation",
                        str(valid), "--output-dir", str(d / "bad"), "--work-dir", str(d / "badwork")] + args,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and words in err[0], p.stderr
    assert not (d / "bad").exists()


def test_the_answer_reads_the_numbers():
    """The plain answer on a made-up report: winner, the tie, the baseline, a paper ordering, the pick."""
    from genbert.recipes.compare import answer

    def way(name, mean, lo, hi, latency, vs_best=None):
        w = {"name": name, "validation_rougeL_mean": mean, "validation_rougeL_ci": [lo, hi],
             "test_rougeL_mean": mean - 1, "test_rougeL_ci": [lo - 1, hi - 1],
             "seeds": [{"costs": {"latency_b1_s": latency}}]}
        if vs_best is not None:
            w["validation_vs_best"] = {"difference": vs_best[0], "ci": vs_best[1], "significant": vs_best[1][1] < 0}
        return w
    report = {"metric": "rougeL", "baselines": {"test": {"lead-10": {"rougeL": 20.0}}},
              "ways": [way("bert2bert", 25.0, 24.0, 26.0, 0.20, (-1.0, [-2.0, -0.2])),
                       way("prefix-pseudo-mask", 27.0, 26.0, 28.0, 0.10),
                       way("bertshare", 26.5, 25.5, 27.5, 0.05, (-0.5, [-1.2, 0.3]))],
              "paper_pairs": {"validation": [{"better": "bertshare", "worse": "bert2bert", "claim": "Rothe",
                                              "difference": 1.5, "ci": [0.5, 2.5]}]}}
    report["ways"][1]["test_vs_baseline"] = {"difference": 6.0, "ci": [4.0, 8.0], "significant": True}
    text = "\n".join(answer(report))
    assert "**Best on validation: prefix-pseudo-mask**, ROUGE-L 27.00 [26.00, 28.00]" in text
    assert "Next: bertshare, -0.50 [-1.20, +0.30] (not significant)" in text
    assert "Not significantly worse than the best on validation: bertshare." in text
    assert "lead-10 baseline on test: +6.00 [+4.00, +8.00] (significant)" in text
    assert "Rothe: bertshare - bert2bert = +1.50 [+0.50, +2.50] on validation: the ordering holds" in text
    assert "**Pick**: bertshare decodes fastest" in text


def test_from_scratch_ways_and_budget_per_task():
    """From scratch the random-weight control and BERT2BERT are other ways again: not run, not missing;
    a report's budget is its results' own (a translation run does not relabel the summarization one)."""
    from genbert.recipes.compare import WAY_NAMES, answer, assemble, default_ways, parse_ways
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    assert [w.name for w in default_ways("minilm")] == list(WAY_NAMES)
    scratch = [w.name for w in default_ways("scratch")]
    assert "random-init" not in scratch and "bert2bert" not in scratch and "bert2rnd" in scratch
    assert [w.name for w in parse_ways(None, "scratch")] == scratch
    assert [w.name for w in parse_ways("bert2bert", "scratch")] == ["bert2bert"]  # asked for: run
    base = Seq2SeqRecipe.resolve({"dataset": "bible-en-fr", "init": "scratch", "max_steps": 7})
    items = [40.0, 50.0, 60.0]
    rec = {"way": "causal", "task": "summarization", "seed": 0, "parameters": 1, "budget": {"init": "minilm",
           "max_steps": 1000, "dataset": "bbc-headlines"}, "command": "python scripts/compare_schemes.py",
           "validation": {"rougeL": 50.0, "per_example": items}, "test": None, "costs": {}}
    report = assemble([rec], base, resamples=10)
    assert report["budget"]["max_steps"] == 1000 and report["dataset"] == "bbc-headlines"
    assert report["commands"] == ["python scripts/compare_schemes.py"]
    missing = [line for line in answer(report) if line.startswith("- Not run yet")]
    assert "random-init" in missing[0] and "causal" not in missing[0].split(":")[1]
    report["budget"]["init"] = "scratch"
    missing = [line for line in answer(report) if line.startswith("- Not run yet")]
    assert "random-init" not in missing[0] and "bert2rnd" in missing[0]
    # the paper orderings follow the budget: the pretrained claims, or the from-scratch ones
    pair = [dict(rec, way="prefix-next-token"), dict(rec, way="bert2rnd",
                                                     validation={"rougeL": 40.0, "per_example": [30.0, 40.0, 50.0]})]
    assert not assemble(pair, base, resamples=10)["paper_pairs"]  # BERTShare / BERT2BERT / ... claims: none here
    pair = [dict(r, budget={**r["budget"], "init": "scratch"}) for r in pair]
    (got,) = assemble(pair, base, resamples=10)["paper_pairs"]["validation"]
    assert (got["better"], got["worse"], got["difference"]) == ("prefix-next-token", "bert2rnd", 10.0)


def test_diffusion_search_grid_fits_the_block_and_task():
    """The diffusion search keeps the BBC grid (block 16: 4, 8, 16 passes, three repeat options); a
    long translation block drops the pass-per-token point and the English content-word option."""
    from genbert.recipes.compare import decode_grid
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    recipe = Seq2SeqRecipe.resolve({"scheme": "bidirectional"})
    bbc = decode_grid(recipe, 16, "summarization")
    assert sorted({g["steps"] for g in bbc}) == [4, 8, 16] and len(bbc) == 3 * 2 * 3
    assert {"steps": 8, "order": "confidence", "collapse_repeats": True, "no_repeat_content_words": True} in bbc
    long = decode_grid(recipe, 80, "translation")
    assert sorted({g["steps"] for g in long}) == [20, 40] and len(long) == 2 * 2 * 2
    assert not any(g["no_repeat_content_words"] for g in long)
    assert len(decode_grid(Seq2SeqRecipe.resolve({"scheme": "prefix"}), 16)) == 4  # greedy + 3 beam settings


def test_overview_across_tasks():
    """Two tasks: each winner, the runner-up's interval, where diffusion ranks, and that they disagree."""
    from genbert.recipes.compare import overview

    def way(name, scheme, mean, vs_best=None):
        w = {"name": name, "scheme": scheme, "validation_rougeL_mean": mean, "validation_bleu_mean": mean}
        if vs_best:
            w["validation_vs_best"] = {"difference": vs_best[0], "ci": vs_best[1], "significant": vs_best[1][1] < 0}
        return w
    summ = {"task": "summarization", "metric": "rougeL", "dataset": "bbc-headlines", "budget": {"init": "minilm"},
            "ways": [way("bidirectional-diffusion", "bidirectional", 21.0, (-5.0, [-6.0, -4.0])),
                     way("prefix-pseudo-mask", "prefix", 26.0)]}
    trans = {"task": "translation", "metric": "bleu", "dataset": "bible-en-fr", "budget": {"init": "scratch"},
             "ways": [way("bertshare", "encoder-decoder", 6.2), way("bert2rnd", "encoder-decoder", 6.1,
                                                                    (-0.1, [-0.6, 0.5]))]}
    assert overview([summ]) == []
    text = "\n".join(overview([summ, trans]))
    assert ("Summarization (`bbc-headlines`, from `minilm`): **prefix-pseudo-mask** wins, ROUGE-L 26.00 on "
            "validation, bidirectional-diffusion next at -5.00 [-6.00, -4.00] (significant); masked diffusion "
            "ranks 2 of 2.") in text
    assert "**bertshare** wins, BLEU 6.20" in text and "(not significant)" in text
    assert "The tasks disagree: summarization picks prefix-pseudo-mask (prefix); translation picks bertshare" in text


def test_bleu_over_seeds_pools_every_seed():
    """Two seeds of a translation way: the reported BLEU is that of both seeds' outputs pooled (not the
    first seed's), and its interval brackets it."""
    from genbert.metrics import corpus_score, per_example
    from genbert.recipes.common import recipe_dict
    from genbert.recipes.compare import assemble
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    refs = ["le chat est sur la table", "il fait beau aujourd'hui", "nous allons à la mer demain matin"]
    outs = {0: ["le chat est sur la table", "il fait froid", "nous allons à la mer"],
            1: ["un chat sur une table", "il fait beau aujourd'hui", "demain nous irons"]}
    items = {s: per_example("translation", o, refs) for s, o in outs.items()}
    recs = [{"way": "bertshare", "task": "translation", "seed": s, "parameters": 1,
             "budget": recipe_dict(Seq2SeqRecipe.resolve({"init": "scratch", "max_steps": 7, "dataset": "bible-en-fr"})),
             "validation": {"bleu": corpus_score("translation", items[s]), "per_example": items[s]},
             "test": None, "costs": {}, "train_s": 1.0, "warmup_s": 0.0, "train_tokens_per_s": 1.0,
             "machine": "m"} for s in (0, 1)]
    (w,) = assemble(recs, Seq2SeqRecipe.resolve({"dataset": "bible-en-fr"}), resamples=20)["ways"]
    pooled = corpus_score("translation", items[0] + items[1])
    assert abs(w["validation_bleu_mean"] - pooled) < 1e-9
    assert w["validation_bleu_mean"] not in (recs[0]["validation"]["bleu"], recs[1]["validation"]["bleu"])
    assert w["validation_bleu_seed_spread"] == sorted(r["validation"]["bleu"] for r in recs)
    report = assemble(recs, Seq2SeqRecipe.resolve({}), resamples=20)
    assert report["machine"] == "m" and report["wall_s"] == 2.0 and report["runs"] == 2
    from genbert.recipes.compare import format_markdown
    lo, hi = w["validation_bleu_seed_spread"]
    row = next(line for line in format_markdown([assemble(recs, Seq2SeqRecipe.resolve({}), resamples=20)], "cmd")
               .splitlines() if line.startswith("| bertshare |"))
    assert row.startswith(f"| bertshare | 2 ({lo:.2f}-{hi:.2f}) |")
    from genbert.recipes.compare import _chrf_lines
    for r, c in zip(recs, (40.0, 50.0)):
        r["validation"].update(chrf=c, signature="nrefs:1|tok:13a", chrf_signature="nrefs:1|nc:6")
    report = assemble(recs, Seq2SeqRecipe.resolve({"dataset": "bible-en-fr"}), resamples=20)
    assert _chrf_lines(report)[0] == "chrF, the mean of the seeds' corpus chrF (validation / test): bertshare 45.00 / —."
    assert "BLEU `nrefs:1|tok:13a`; chrF `nrefs:1|nc:6`" in _chrf_lines(report)[2]


def test_a_trained_run_is_reused_whatever_the_decoding_flags(tmp_path):
    """Decoding flags do not change the weights: a finished run is reused when only they differ
    (or a newer recipe adds one); a training flag that differs stops with the flag named."""
    from dataclasses import replace

    from genbert.recipes import common as C
    from genbert.recipes.common import UsageError
    from genbert.recipes.compare import TRAINED, trained_run
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    recipe = Seq2SeqRecipe.resolve({})
    stored = C.recipe_dict(recipe)
    del stored["copy_bias"]  # written before the field existed
    del stored["average_last"]  # a training field added later: the stored run ran at its default
    (tmp_path / TRAINED).write_text(json.dumps({"recipe": stored, "task": "summarization"}))
    assert trained_run(tmp_path, replace(recipe, num_beams=2, copy_bias=1.0)) is not None
    with pytest.raises(UsageError, match=r"--average-last 1 -> 3"):
        trained_run(tmp_path, replace(recipe, average_last=3))
    assert trained_run(tmp_path, replace(recipe, diffusion_replace="mask")) is not None  # prefix: not its flag
    with pytest.raises(UsageError, match=r"another recipe \(--lr 0.0002 -> 0.001\)"):
        trained_run(tmp_path, replace(recipe, lr=1e-3))  # a finished run is never deleted
    assert trained_run(tmp_path / "none", recipe) is None
    # a run stored before --freeze-vocabulary existed trained its vocabulary: not today's prefix default
    del stored["freeze_vocabulary"]
    (tmp_path / TRAINED).write_text(json.dumps({"recipe": stored, "task": "summarization"}))
    with pytest.raises(UsageError, match=r"--freeze-vocabulary False -> True"):
        trained_run(tmp_path, recipe)
    assert trained_run(tmp_path, replace(recipe, freeze_vocabulary=False)) is not None
    causal = C.recipe_dict(Seq2SeqRecipe.resolve({"scheme": "causal"}))
    del causal["freeze_vocabulary"]  # off by default for the causal scheme, before and now
    (tmp_path / TRAINED).write_text(json.dumps({"recipe": causal, "task": "summarization"}))
    assert trained_run(tmp_path, Seq2SeqRecipe.resolve({"scheme": "causal"})) is not None
    # the diffusion default fixed its vocabulary later (session 11): a run stored before trained it
    diffusion = Seq2SeqRecipe.resolve({"scheme": "bidirectional"})
    stored = C.recipe_dict(diffusion)
    del stored["freeze_vocabulary"]
    (tmp_path / TRAINED).write_text(json.dumps({"recipe": stored, "task": "summarization"}))
    with pytest.raises(UsageError, match=r"--freeze-vocabulary False -> True"):
        trained_run(tmp_path, diffusion)
    assert trained_run(tmp_path, replace(diffusion, freeze_vocabulary=False)) is not None
