"""scripts/train_summarization.py (genbert.recipes.seq2seq): tiny end-to-end runs per scheme, resume,
bad input, output-dir protection."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "train_summarization.py"
TINY = ["--init", "scratch", "--hidden-size", "32", "--layers", "2", "--heads", "4", "--intermediate-size", "64",
        "--vocab-size", "60", "--max-position-embeddings", "64", "--batch-size", "8", "--max-source-length", "24",
        "--max-target-length", "8", "--limit-eval", "6", "--no-progress", "--lr", "1e-3", "--mlm-warmup-steps", "2"]
WORDS = "the cat dog bird sat ran flew over under near a big small red blue green house tree river road".split()


from genbert.recipes import seq2seq as script  # noqa: E402


def write_pairs(path: Path, n: int, seed: int = 0, empty: int = 0) -> Path:
    import random
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        src = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 16))) + "."
        lines.append(json.dumps({"source": src, "target": " ".join(src.split()[:3])}))
    lines += [json.dumps({"source": "", "target": "lonely"})] * empty
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    return write_pairs(d / "train.jsonl", 24, empty=2), write_pairs(d / "val.jsonl", 6, seed=1)


def run(*args: str, cwd=None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def call(capsys, *args: str) -> tuple[int, str, str]:
    """main() in-process; (exit code, stdout, stderr)."""
    try:
        code = script.main(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("scheme,objective", [("prefix", "masked-target"), ("causal", "next-token"),
                                              ("encoder-decoder", "next-token"), ("bidirectional", "diffusion")])
def test_end_to_end_tiny_run(tmp_path, data, scheme, objective):
    from genbert import GenBert, TextGenerator

    train, val = data
    out = tmp_path / "run"
    # one model (the prefix and bidirectional defaults train a soup of two: test_soup_...)
    extra = ["--eval-each-epoch", "--objective", objective, "--soup", "1"] if scheme == "prefix" else []
    words = ["--no-repeat-word-ngram-size", "2", "--no-repeat-content-words"] if scheme == "causal" else []
    if scheme == "bidirectional":  # room to fit: the block shrinks to the longest target and its end token
        extra = ["--max-target-length", "20", "--soup", "1"]
    proc = run("--train", str(train), "--validation", str(val), "--output-dir", str(out), "--scheme", scheme,
               "--max-steps", "4", "--save-steps", "2", *TINY, *extra, *words)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # prefix and causal models learn token prediction (MLM) on the sources first
    assert (out / "mlm-warmup" / "log.jsonl").exists() == (scheme != "encoder-decoder")
    assert "Traceback" not in proc.stderr
    assert "skipped 2 record(s) with an empty source or target" in proc.stdout
    assert "rouge1" in proc.stdout and "lead-10" in proc.stdout and "generated:" in proc.stdout
    assert f"model saved to {out / 'final'}" in proc.stdout
    # final/ loads both ways and generates
    gen = TextGenerator.from_pretrained(out / "final", device="cpu")
    assert isinstance(gen.generate("the cat sat near a big tree."), str)
    model = GenBert.from_pretrained(out / "final")
    assert model.config.objective == objective
    assert model.config.decoding == {"masked-target": "mask-predict", "diffusion": "diffusion"}.get(objective,
                                                                                                  "next-token")
    assert (model.decoder is not None) == (scheme == "encoder-decoder")
    assert model.config.mask_scheme == {"prefix": "prefix", "causal": "causal"}.get(scheme, "bidirectional")
    settings = json.loads((out / "final" / "generation.json").read_text())
    decoding = {"steps", "order", "block_length", "collapse_repeats", "no_repeat_content_words", "copy_subwords"} \
        if scheme == "bidirectional" else {
        "num_beams", "no_repeat_ngram_size", "no_repeat_word_ngram_size", "no_repeat_content_words",
        "length_penalty", "copy_subwords", "copy_numbers"}
    assert set(settings) == {"max_source_length", "max_target_length", "max_new_tokens", "scheme", "objective",
                             "copy_bias", *decoding}
    assert settings["copy_bias"] == (2.0 if scheme == "bidirectional" else 2.5)  # summarization's copy prior
    block = 8
    if scheme == "bidirectional":  # the block fits the longest training target and its end token
        from genbert.tokenization import Tokenizer
        tok = Tokenizer.from_dir(out / "final")
        targets = [json.loads(x)["target"] for x in train.read_text().splitlines()]
        block = min(20, max(len(tok.encode(t, add_special_tokens=False)) for t in targets if t) + 1)
        assert block < 20 and f"note: diffusion block of {block} tokens" in proc.stdout
        assert settings["steps"] == -(-block // 4)  # a quarter of the block, the default
        stored = json.loads((out / "run_config.json").read_text())  # defaults stored resolved, for --resume
        assert (stored["steps"], stored["soup"], stored["copy_attention"]) == (settings["steps"], 1, True)
    assert settings["scheme"] == scheme and settings["objective"] == objective and settings["max_new_tokens"] == block
    if scheme != "bidirectional":  # summarization: no word twice, no content word twice (unless asked otherwise)
        assert (settings["no_repeat_word_ngram_size"], settings["no_repeat_content_words"]) == (
            (2, True) if words else (1, True))
    else:  # diffusion: repeats in a row collapsed unless --no-collapse-repeats (chosen on validation)
        assert (settings["collapse_repeats"], settings["no_repeat_content_words"]) == (True, True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"scores", "baselines", "settings"}
    assert set(metrics["scores"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert {"lead-10", "first-sentence"} <= set(metrics["baselines"])
    assert metrics["settings"]["num_examples"] == 6
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and {"prediction", "reference"} <= set(preds[0])
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint-2", "checkpoint-4", "final", "log.jsonl", "loss.png", "tokenizer", "run_config.json"} <= names
    assert not [n for n in names if n.startswith(".")]
    # checkpoints are TextGenerator directories too
    TextGenerator.from_pretrained(out / "checkpoint-4", device="cpu")
    if model.decoder is None:  # prefix, diffusion: the vocabulary stays as the warm-up left it; causal trains it
        early = GenBert.from_pretrained(out / "checkpoint-2")
        frozen = scheme in ("prefix", "bidirectional")
        assert torch.equal(early.embeddings.word.weight, model.embeddings.word.weight) == frozen
        assert torch.equal(early.lm_head.bias, model.lm_head.bias) == frozen
        assert not torch.equal(early.lm_head.dense.weight, model.lm_head.dense.weight)
    if scheme == "prefix":  # 24 pairs / batch 8 = 3 steps an epoch: one epoch-end evaluation
        log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
        evals = [r for r in log if "eval" in r]
        assert len(evals) == 1 and evals[0]["step"] == 3 and "rouge1" in evals[0]["eval"]


def test_translation_task_scores_bleu_with_a_cased_vocabulary(tmp_path, data):
    from genbert.tokenization import Tokenizer

    train, val = data
    out = tmp_path / "run"
    proc = run("--train", str(train), "--validation", str(val), "--output-dir", str(out), "--task", "translation",
               "--scheme", "encoder-decoder", "--max-steps", "2", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "(translation)" in proc.stdout and "bleu" in proc.stdout and "copy-source" in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"bleu", "chrf", "signature"} <= set(metrics["scores"]) and set(metrics["baselines"]) == {"copy-source"}
    assert metrics["settings"]["task"] == "translation"
    # BLEU is case-sensitive: the from-scratch sentencepiece vocabulary keeps case
    tok = Tokenizer.from_dir(out / "tokenizer")
    assert tok.encode("THE CAT") != tok.encode("the cat")  # a case-folding vocabulary maps both alike


def test_resume_and_output_dir_protection(tmp_path, data, capsys):
    train, val = data
    out = tmp_path / "run"
    base = ["--train", str(train), "--validation", str(val), "--output-dir", str(out), *TINY]
    proc = run(*base, "--max-steps", "3", "--save-steps", "2", "--no-eval")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (out / "metrics.json").exists()
    before = snapshot(out)
    # an existing run is never overwritten without --resume / --overwrite
    code, _, err = call(capsys, *base, "--max-steps", "3", "--no-eval")
    assert code == 2 and "--overwrite" in err and "--resume" in err and len(err.strip().splitlines()) == 1
    # resuming with settings that change the trajectory is refused before anything is written
    code, _, err = call(capsys, "--output-dir", str(out), "--resume", "--lr", "5e-4", "--no-eval", "--no-progress")
    assert code == 2 and "lr" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    # --overwrite with bad input fails before touching the previous run
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a", "target": "b"}\n{oops\n')
    code, _, err = call(capsys, "--train", str(bad), "--validation", str(val), "--output-dir", str(out),
                        "--overwrite", *TINY)
    assert code == 2 and f"{bad}:2: malformed JSON" in err
    assert snapshot(out) == before
    # --resume alone reuses the stored settings (data, sizes, scratch tokenizer) and finishes the run
    proc = run("--output-dir", str(out), "--resume", "--max-steps", "5", "--no-eval", "--no-progress")
    assert proc.returncode != 0 and "max_steps" in proc.stderr  # max_steps is part of the trajectory
    proc = run("--output-dir", str(out), "--resume", "--no-eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "reusing the sentencepiece tokenizer" in proc.stdout
    assert (out / "final" / "model.safetensors").is_file()
    assert (out / "tokenizer" / "spiece.model").read_bytes() == before["tokenizer/spiece.model"]


def test_soup_is_the_mean_of_its_members_and_resumes_bit_exactly(tmp_path, data):
    """The prefix default: two members from one start (seeds 0 and 1), the final model the mean of
    their weights to the bit; killed in the second member, --resume finishes with the same bits."""
    from safetensors.torch import load_file

    train, val = data
    out = tmp_path / "run"
    proc = run("--train", str(train), "--validation", str(val), "--output-dir", str(out), "--max-steps", "4",
               "--save-steps", "2", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "a soup of 2 models (seeds 0..1)" in proc.stdout and "trained 2 x 4 steps" in proc.stdout
    soup = out / "soup"
    start = load_file(str(soup / "start.safetensors"))
    members = [load_file(str(soup / f"member-{i}" / "checkpoint-4" / "model.safetensors")) for i in (0, 1)]
    final = load_file(str(out / "final" / "model.safetensors"))
    assert json.loads((soup / "member-1" / "checkpoint-4" / "trainer_state.json").read_text())["config"]["seed"] == 1
    trained = [k for k in final if not torch.equal(start[k], members[0][k])]
    assert "copy_head.query.weight" in trained and len(trained) > len(final) // 2
    for k in trained:  # the members trained apart (seeds), the model is their mean
        assert not torch.equal(members[0][k], members[1][k]), k
        assert torch.equal(final[k], ((members[0][k].double() + members[1][k].double()) / 2).to(final[k].dtype)), k
    assert torch.equal(final["embeddings.word.weight"], start["embeddings.word.weight"])  # frozen vocabulary
    assert (soup / "member-1" / "log.jsonl").is_file() and not (out / "checkpoint-4").exists()
    # killed after the second member's step-2 checkpoint: --resume loads the first, finishes the second
    first = (out / "final" / "model.safetensors").read_bytes()
    import shutil
    for p in (soup / "member-1" / "checkpoint-4", out / "final"):
        shutil.rmtree(p)
    proc = run("--output-dir", str(out), "--resume", "--no-eval", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MLM warm-up" not in proc.stdout and "checkpoint-2 (step 2/4)" in proc.stderr
    assert (out / "final" / "model.safetensors").read_bytes() == first


def test_soup_default_follows_the_scheme_and_old_runs_resume_as_one_model():
    from genbert.recipes.compare import COMPARISON_DEFAULTS
    recipe = script.Seq2SeqRecipe()
    assert recipe.soup is None and recipe.soup_size == 2  # the prefix scheme's default
    assert [script.Seq2SeqRecipe(scheme=s).soup_size for s in ("causal", "encoder-decoder", "bidirectional")] \
        == [1, 1, 2]
    assert script.Seq2SeqRecipe(scheme="causal", soup=3).soup_size == 3
    # a run stored before --soup existed trained one model: resuming it must not start a soup
    assert script.Seq2SeqRecipe.resolve({}, {"scheme": "prefix"}).soup_size == 1
    assert script.Seq2SeqRecipe.resolve({"soup": 2}, {"scheme": "prefix"}).soup_size == 2
    assert script.Seq2SeqRecipe.resolve({}).soup_size == 2
    assert script.Seq2SeqRecipe.resolve_defaults({"scheme": "prefix"})["soup"] == 2
    # a run stores these resolved, so a later change of a default does not change what resuming it does
    stored = script.Seq2SeqRecipe.resolve_defaults({"scheme": "bidirectional", "max_target_length": 16})
    assert (stored["soup"], stored["steps"], stored["copy_attention"]) == (2, 4, True)
    assert script.Seq2SeqRecipe.resolve_defaults({"scheme": "prefix", "max_target_length": 16})["steps"] is None
    old = script.Seq2SeqRecipe.resolve({}, {"scheme": "bidirectional", "max_target_length": 16, "steps": 8,
                                            "soup": 1})
    assert (old.diffusion_steps, old.soup_size) == (8, 1)
    assert COMPARISON_DEFAULTS["soup"] == 1  # the comparison trains one model per way and seed


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["malformed", "missing-field", "undecodable", "empty", "not-found", "csv-header"])
def test_bad_data_files(tmp_path, data, capsys, case):
    _, val = data
    f = tmp_path / ("train.csv" if case == "csv-header" else "train.jsonl")
    expected = {
        "malformed": (b'{"source": "a", "target": "b"}\n\n{"source": "a",\n', f"{f}:3: malformed JSON"),
        "missing-field": (b'{"source": "a", "target": "b"}\n{"source": "a"}\n', f"{f}:2: missing field 'target'"),
        "undecodable": (b'{"source": "a", "target": "b"}\n{"source": "\xff\xfe", "target": "b"}\n',
                        f"{f}:2: not valid UTF-8"),
        "empty": (b"", f"{f}: file is empty"),
        "not-found": (None, f"{f}: file not found"),
        "csv-header": (b"text,summary\na,b\n", f"{f}:1: header has no column 'source'"),
    }[case]
    if expected[0] is not None:
        f.write_bytes(expected[0])
    out = tmp_path / "out"
    code, stdout, err = call(capsys, "--train", str(f), "--validation", str(val), "--output-dir", str(out), *TINY)
    assert code == 2
    assert err.startswith("train_summarization.py: error: ") and expected[1] in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--init", "no/such/model"], "--init 'no/such/model'"),
    (["--dataset", "nope"], "--dataset"),
    (["--train", "{train}"], "--validation"),
    (["--validation", "{val}"], "--validation needs --train"),
    (["--scheme", "causal", "--objective", "masked-target", "--train", "{train}", "--validation", "{val}"],
     "--objective masked-target applies to --scheme prefix only"),
    (["--batch-size", "0", "--train", "{train}", "--validation", "{val}"], "--batch-size=0"),
    (["--resume", "--overwrite"], "not allowed with argument"),
    (["--scheme", "bidirectional", "--no-repeat-word-ngram-size", "2", "--train", "{train}", "--validation",
      "{val}"], "--no-repeat-word-ngram-size does not apply to --scheme bidirectional"),
    (["--no-repeat-word-ngram-size", "-1", "--train", "{train}", "--validation", "{val}"],
     "--no-repeat-word-ngram-size=-1: must be >= 0"),
    (["--copy-bias", "nan", "--train", "{train}", "--validation", "{val}"], "--copy-bias=nan: must be a finite number"),
])
def test_bad_flags(tmp_path, data, capsys, args, needle):
    train, val = data
    args = [a.format(train=train, val=val) for a in args]
    code, _, err = call(capsys, "--output-dir", str(tmp_path / "out"), *args)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_init_directory(tmp_path, data, capsys):
    train, val = data
    (tmp_path / "empty_model").mkdir()
    code, _, err = call(capsys, "--train", str(train), "--validation", str(val), "--output-dir",
                        str(tmp_path / "out"), "--init", str(tmp_path / "empty_model"))
    assert code == 2 and "no config.json" in err and len(err.strip().splitlines()) == 1


def test_bad_input_in_a_real_process(tmp_path, data):
    """The same contract seen from outside: exit status 2, one stderr line, no traceback."""
    _, val = data
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"source": "x", "target": "y"}\n[1, 2]\n')
    proc = run("--train", str(bad), "--validation", str(val), "--output-dir", str(tmp_path / "o"), *TINY)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"train_summarization.py: error: {bad}:2: expected a JSON object, got list"


# --------------------------------------------------------------------------- defaults
def test_every_recipe_field_is_a_flag_with_help():
    from dataclasses import fields
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    actions = {a.dest: a for a in script.build_parser()._actions}
    for f in fields(Seq2SeqRecipe):
        assert f.name in actions and actions[f.name].help, f.name
    r = Seq2SeqRecipe()
    assert (r.init, r.dataset, r.scheme, r.seq2seq_objective, r.max_steps) == ("minilm", "bbc-headlines", "prefix",
                                                                               "pseudo-mask", 1000)
    assert "(default 1000)" in actions["max_steps"].help


def test_default_output_dir(tmp_path, monkeypatch):
    from genbert.recipes.common import RunOptions, UsageError, check_output_dir
    from genbert.recipes.seq2seq import Seq2SeqRecipe, output_dir_for
    monkeypatch.chdir(tmp_path)
    assert output_dir_for(Seq2SeqRecipe(), RunOptions()) == Path("runs/bbc-headlines")
    assert output_dir_for(Seq2SeqRecipe(dataset=None, train="x/my.jsonl"), RunOptions()) == Path("runs/my")
    Path("runs/bbc-headlines").mkdir(parents=True)
    (Path("runs/bbc-headlines") / "log.jsonl").write_text("{}\n")
    # no --output-dir: a fresh timestamped directory beside the earlier run, whatever the other flags
    fresh = output_dir_for(Seq2SeqRecipe(batch_size=8), RunOptions())
    assert fresh.parent == Path("runs") and fresh.name.startswith("bbc-headlines-")
    # an explicit --output-dir holding a run: an error naming --overwrite / --resume
    with pytest.raises(UsageError, match="--overwrite"):
        check_output_dir(output_dir_for(Seq2SeqRecipe(), RunOptions(output_dir=Path("runs/bbc-headlines"))),
                         resume=False, overwrite=False)


def test_bench_diffusion_searches_a_trained_diffusion_model(tmp_path, data):
    """scripts/bench_diffusion.py through its entry point on a tiny trained diffusion model: every
    (steps, order, repeat handling) of the grid is a row, the best one is pictured unmasking."""
    train, val = data
    out = tmp_path / "run"
    proc = run("--train", str(train), "--validation", str(val), "--output-dir", str(out), "--scheme",
               "bidirectional", "--max-steps", "2", "--save-steps", "0", "--soup", "1", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    report = tmp_path / "search"
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_diffusion.py"), str(out / "final"),
                        "--limit", "5", "--steps", "2", "8", "--orders", "confidence", "left-to-right",
                        "--output", str(report)], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    rows = json.loads(report.with_suffix(".json").read_text())["rows"]
    assert len(rows) == 2 * 2 * 3
    assert {r["repeats"] for r in rows} == {"none", "collapse", "collapse+no-repeat"}
    assert all(0 <= r["rougeL"] <= 100 and r["passes_per_token"] > 0 for r in rows)
    # one definition of the cost: the source pass, then one pass per denoising step
    assert all(r["passes_per_token"] == pytest.approx((1 + r["steps"]) / r["tokens_per_example"]) for r in rows
               if r["model"] == "diffusion")
    assert "| repeats |" in report.with_suffix(".md").read_text()
    assert (tmp_path / "search_unmasking.png").stat().st_size > 1000 and report.with_suffix(".png").is_file()


def test_content_word_blocking_default_follows_the_task():
    """On for summarization (English headlines), off for translation (the word list is English);
    the flag decides when given, and a stored run's explicit choice is kept on --resume."""
    from genbert.recipes.seq2seq import Seq2SeqRecipe, build_parser
    default = Seq2SeqRecipe.resolve({})
    assert default.no_repeat_content_words is None
    assert default.generation_settings("summarization")["no_repeat_content_words"] is True
    assert default.generation_settings("translation")["no_repeat_content_words"] is False
    assert build_parser().parse_args(["--no-repeat-content-words"]).no_repeat_content_words is True
    assert build_parser().parse_args(["--no-fit-block"]).fit_block is False
    args = build_parser().parse_args(["--no-no-repeat-content-words"])
    off = Seq2SeqRecipe.resolve({"no_repeat_content_words": args.no_repeat_content_words})
    assert off.generation_settings("summarization")["no_repeat_content_words"] is False
    on = Seq2SeqRecipe.resolve({}, stored={"no_repeat_content_words": True})
    assert on.generation_settings("translation")["no_repeat_content_words"] is True


def test_copy_prior_default_follows_the_task_and_scheme():
    """Summarization decodes with the copy prior chosen on BBC validation (2.5; 2 for diffusion),
    translation without one; --copy-bias and a stored run's value win."""
    from genbert.recipes.seq2seq import COPY_BIAS, Seq2SeqRecipe, build_parser
    default = Seq2SeqRecipe.resolve({})
    assert default.copy_bias is None and COPY_BIAS == {"autoregressive": 2.5, "bidirectional": 2.0}
    assert default.generation_settings("summarization")["copy_bias"] == 2.5
    assert default.generation_settings("translation")["copy_bias"] == 0.0
    diffusion = Seq2SeqRecipe.resolve({"scheme": "bidirectional"})
    assert diffusion.generation_settings("summarization")["copy_bias"] == 2.0
    args = build_parser().parse_args(["--copy-bias", "0"])
    assert Seq2SeqRecipe.resolve({"copy_bias": args.copy_bias}).generation_settings("summarization")["copy_bias"] == 0
    stored = Seq2SeqRecipe.resolve({}, stored={"copy_bias": 1.5})
    assert stored.generation_settings("translation")["copy_bias"] == 1.5


def test_copy_subwords_default_follows_the_task_and_scheme():
    """Summarization copies multi-piece words from the source (chosen on validation), every scheme;
    translation does not."""
    from genbert.recipes.seq2seq import Seq2SeqRecipe, build_parser
    default = Seq2SeqRecipe.resolve({})
    assert default.generation_settings("summarization")["copy_subwords"] is True
    assert default.generation_settings("translation")["copy_subwords"] is False
    off = build_parser().parse_args(["--no-copy-subwords"])
    assert Seq2SeqRecipe.resolve({"copy_subwords": off.copy_subwords}).generation_settings()["copy_subwords"] is False
    assert Seq2SeqRecipe.resolve({"scheme": "bidirectional"}).generation_settings()["copy_subwords"] is True


def test_copy_numbers_default_follows_the_task_and_scheme():
    """Summarization decoded token by token copies numbers whole from the source (chosen on
    validation); translation does not, and diffusion, which cannot follow the rule, is never asked to."""
    from genbert.recipes.seq2seq import Seq2SeqRecipe, build_parser
    assert Seq2SeqRecipe.resolve({}).generation_settings("summarization")["copy_numbers"] is True
    assert Seq2SeqRecipe.resolve({}).generation_settings("translation")["copy_numbers"] is False
    assert Seq2SeqRecipe.resolve({"scheme": "encoder-decoder"}).generation_settings()["copy_numbers"] is True
    off = build_parser().parse_args(["--no-copy-numbers"])
    assert Seq2SeqRecipe.resolve({"copy_numbers": off.copy_numbers}).generation_settings()["copy_numbers"] is False
    assert "copy_numbers" not in Seq2SeqRecipe.resolve({"scheme": "bidirectional"}).generation_settings()


def test_word_repeat_blocking_defaults_by_task_and_scheme():
    """No word twice for summarization (autoregressive schemes), off for translation; a flag wins;
    diffusion decoding has its own exact-word rule and stores no word n-gram setting."""
    from genbert.recipes.seq2seq import Seq2SeqRecipe
    assert Seq2SeqRecipe().generation_settings("summarization")["no_repeat_word_ngram_size"] == 1
    assert Seq2SeqRecipe().generation_settings("translation")["no_repeat_word_ngram_size"] == 0
    assert Seq2SeqRecipe(no_repeat_word_ngram_size=0).generation_settings()["no_repeat_word_ngram_size"] == 0
    assert Seq2SeqRecipe(scheme="causal").generation_settings()["no_repeat_word_ngram_size"] == 1
    assert "no_repeat_word_ngram_size" not in Seq2SeqRecipe(scheme="bidirectional").generation_settings()
