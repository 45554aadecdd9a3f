"""scripts/pretrain.py (genbert.recipes.pretrain) and genbert.data.documents: tiny runs per objective,
held-out split and evaluation, resume, bad input."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from genbert.data import documents as D
from genbert.data.datasets import DataError
from genbert.recipes import heldout as H
from genbert.recipes import pretrain as P

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "pretrain.py"
TINY = ["--init", "scratch", "--hidden-size", "32", "--layers", "2", "--heads", "4", "--intermediate-size", "64",
        "--vocab-size", "60", "--max-position-embeddings", "64", "--max-length", "32", "--batch-size", "8",
        "--heldout-fraction", "0.1", "--no-progress", "--lr", "1e-3", "--log-steps", "1"]
WORDS = "the cat dog bird sat ran flew over under near a big small red blue green house tree river road".split()


script = P


def make_docs(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sents = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 12))).capitalize() + "."
                 for _ in range(rng.randint(3, 7))]
        docs.append(" ".join(sents))
    return docs


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    f = tmp_path_factory.mktemp("data") / "docs.txt"
    f.write_text("\n\n".join(make_docs(30)) + "\n", encoding="utf-8")
    return f


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from genbert.tokenization import train_sentencepiece
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train_sentencepiece(make_docs(30), tmp_path_factory.mktemp("spm"), 60)


def call(capsys, *args: str) -> tuple[int, str, str]:
    """main() in-process; (exit code, stdout, stderr)."""
    try:
        code = script.main(list(args))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def weights(d: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    return load_file(str(d / "model.safetensors"))


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("objective,extra", [("mlm", ["--whole-word-masking"]), ("mlm+nsp", []), ("unilm", []),
                                             ("infilling", ["--decoder-layers", "1"])])
def test_each_objective_trains_and_saves_a_loadable_model(tmp_path, text_file, capsys, objective, extra):
    from genbert import GenBert
    from genbert.tokenization import Tokenizer

    out = tmp_path / "run"
    code, stdout, err = call(capsys, "--text", str(text_file), "--objective", objective, "--output-dir", str(out),
                             "--max-steps", "2", *TINY, *extra)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    assert "held-out masked-token accuracy:" in stdout and f"model saved to {out / 'final'}" in stdout
    model = GenBert.from_pretrained(out / "final")
    tok = Tokenizer.from_dir(out / "final")
    assert len(tok) <= model.config.vocab_size and tok.mask_token_id == model.config.mask_token_id
    assert model.config.objective == objective and model.config.extra["task"] == "pretraining"
    assert model.config.mask_scheme == "bidirectional"
    assert (model.decoder is not None) == (objective == "infilling")
    if objective == "infilling":
        assert model.config.decoder.num_hidden_layers == 1
    ev = json.loads((out / P.EVAL_FILE).read_text())
    assert {"before", "after", "heldout", "eval_seed", "train_steps", "wall_s"} <= set(ev)
    assert ev["before"]["masked_tokens"] == ev["after"]["masked_tokens"] == ev["heldout"]["masked_tokens"] > 0
    assert 0 <= ev["after"]["masked_token_accuracy"] <= 1 and ev["train_steps"] == 2
    specific = {"mlm+nsp": "nsp_accuracy", "unilm": "unilm_prefix_accuracy", "infilling": "infilling_token_accuracy"}
    if objective in specific:
        assert specific[objective] in ev["before"] and specific[objective] in ev["after"]
    names = {p.name for p in out.iterdir()}
    assert {"checkpoint-2", "final", "log.jsonl", "loss.png", "tokenizer", "run_config.json", P.EVAL_FILE} <= names
    assert not [n for n in names if n.startswith(".")]
    if objective == "unilm":
        recs = [json.loads(x) for x in (out / P.SCHEME_LOSS_FILE).read_text().splitlines()]
        assert [r["step"] for r in recs] == [1, 2]
        assert all(set(r) - {"step"} <= set(H.UNILM_SCHEMES) and len(r) > 1 for r in recs)
        assert "training loss per UniLM scheme" in stdout
    if objective == "mlm":  # the result is a valid --init of scripts/train_summarization.py
        from genbert.recipes.common import ModelSpec, build_model
        built = build_model(ModelSpec(str(out / "final"), "prefix", "masked-target"))
        assert built.model.config.mask_scheme == "prefix" and not built.new_params
        assert built.model.config.decoding == "mask-predict"
        # scripts/eval_mlm.py scores the saved model on the same held-out inputs
        assert P.eval_main([str(out / "final"), "--text", str(text_file), "--heldout-fraction", "0.1",
                               "--max-length", "32", "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert again["masked_token_accuracy"] == ev["after"]["masked_token_accuracy"]
        assert again["masked_token_loss"] == pytest.approx(ev["after"]["masked_token_loss"], rel=1e-5)
        assert again["heldout"]["fingerprint"] == ev["heldout"]["fingerprint"]


# --------------------------------------------------------------------------- evaluation
class _EchoModel(nn.Module):
    """Predicts, at every position, the token that is there (one-hot scores)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, input_ids, attention_mask=None, token_type_ids=None):
        return torch.nn.functional.one_hot(input_ids, self.vocab).float() * 10.0

    def lm_head(self, hidden):
        return hidden


def test_masked_token_accuracy_known_case():
    ids = torch.tensor([[2, 5, 6, 4, 3], [2, 7, 4, 3, 0]])
    labels = torch.tensor([[-100, 5, -100, 7, -100], [-100, 7, 8, -100, -100]])
    batch = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids),
             "labels": labels}
    m = H.masked_token_accuracy(_EchoModel(10), [batch])
    # labelled: (5 at 5) right, (7 at [MASK]) wrong, (7 at 7) right, (8 at [MASK]) wrong
    assert m["tokens"] == 4 and m["accuracy"] == pytest.approx(0.5)
    right = -torch.log_softmax(torch.tensor([10.0] + [0.0] * 9), 0)[0]
    wrong = -torch.log_softmax(torch.tensor([10.0] + [0.0] * 9), 0)[1]
    assert m["loss"] == pytest.approx(float(right + wrong) / 2, rel=1e-5)
    empty = {**batch, "labels": torch.full_like(labels, -100)}
    assert H.masked_token_accuracy(_EchoModel(10), [empty])["tokens"] == 0


def test_eval_sets_are_fixed_by_the_eval_seed(tokenizer):
    docs = make_docs(6, seed=3)
    a = H.make_eval_sets("mlm", tokenizer, docs, 32, eval_seed=0, batch_size=4)
    b = H.make_eval_sets("mlm", tokenizer, docs, 32, eval_seed=0, batch_size=4)
    c = H.make_eval_sets("mlm", tokenizer, docs, 32, eval_seed=1, batch_size=4)
    assert a.info == b.info and a.info["masked_tokens"] > 0
    for x, y in zip(a.mlm, b.mlm):
        assert torch.equal(x["input_ids"], y["input_ids"]) and torch.equal(x["labels"], y["labels"])
    assert any(not torch.equal(x["labels"], y["labels"]) for x, y in zip(a.mlm, c.mlm))
    capped = H.make_eval_sets("mlm", tokenizer, docs, 32, eval_seed=0, max_sequences=3)
    assert capped.info["sequences"] == 3


def test_chunks_fit_max_length(tokenizer):
    docs = make_docs(5, seed=1)
    chunks = D.chunk_documents(tokenizer, docs, 16)
    assert chunks and all(1 <= len(c) <= 14 for c in chunks)
    whole = sum(len(x) for x in tokenizer.batch_encode(docs))
    assert whole - 5 * 14 / 8 <= sum(map(len, chunks)) <= whole  # only short tails are dropped
    assert D.split_sentences("One two. Three four!\nFive six? seven. Eight") == [
        "One two.", "Three four!", "Five six? seven.", "Eight"]


# --------------------------------------------------------------------------- held-out split
def test_heldout_split_is_deterministic_and_disjoint():
    docs = [f"document {i}: " + " ".join(random.Random(i).choice(WORDS) for _ in range(8)) for i in range(1000)]
    s = D.split_heldout(docs, 0.05)
    assert set(s.train).isdisjoint(s.heldout) and len(s.train) + len(s.heldout) == len(docs)
    assert 25 <= len(s.heldout) <= 80
    assert s.train == [d for d in docs if d not in set(s.heldout)]  # training keeps the input order
    shuffled = list(docs)
    random.Random(1).shuffle(shuffled)
    s2 = D.split_heldout(shuffled, 0.05)
    assert s2.heldout == s.heldout and s2.fingerprint == s.fingerprint  # not the order: the text decides
    # a document's side does not depend on the others
    assert set(D.split_heldout(docs[:500], 0.05).heldout) == set(s.heldout) & set(docs[:500])
    assert len(D.split_heldout(docs[:3], 0.05).heldout) == 1  # at least one held out
    assert len(D.split_heldout(docs[:2], 0.5).train) == 1  # at least one kept
    assert D.split_heldout(docs[:3], 0).heldout == []
    with pytest.raises(DataError, match="at least 2"):
        D.split_heldout(docs[:1], 0.05)


def test_duplicates_are_dropped_before_the_split(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(json.dumps({"text": t}) for t in ["Hello  world.", "hello world.", "Other text."]) + "\n")
    d = D.load_documents([str(f)])
    assert d.texts == ["Hello  world.", "Other text."] and d.duplicates == 1 and d.sources == {str(f): 3}
    assert D.load_documents([str(f)], limit=1).texts == ["Hello  world."]


# --------------------------------------------------------------------------- resume
def test_resume_continues_bit_exactly(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    base = ["--text", str(text_file), "--output-dir", str(out), *TINY, "--max-steps", "4", "--save-steps", "2"]
    code, _, err = call(capsys, *base)
    assert code == 0, err[-3000:]
    final = weights(out / "final")
    ev = json.loads((out / P.EVAL_FILE).read_text())
    # an existing run is never overwritten without --resume / --overwrite
    code, _, err = call(capsys, *base)
    assert code == 2 and "--resume" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    # a changed trajectory is refused
    code, _, err = call(capsys, "--output-dir", str(out), "--resume", "--lr", "5e-4", "--no-progress")
    assert code == 2 and "lr" in err and len(err.strip().splitlines()) == 1
    # simulate a crash after checkpoint-2; --resume alone reuses the stored settings
    import shutil
    shutil.rmtree(out / "checkpoint-4")
    shutil.rmtree(out / "final")
    code, stdout, err = call(capsys, "--output-dir", str(out), "--resume", "--no-progress")
    assert code == 0, err[-3000:]
    assert "resuming from" in err and "checkpoint-2" in err
    assert "reusing the sentencepiece tokenizer" in stdout
    resumed = weights(out / "final")
    assert resumed.keys() == final.keys() and all(torch.equal(resumed[k], final[k]) for k in final)
    ev2 = json.loads((out / P.EVAL_FILE).read_text())
    assert ev2["before"] == ev["before"] and ev2["after"] == ev["after"]
    steps = [json.loads(x)["step"] for x in (out / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["missing", "malformed", "empty", "no-text-field", "corpus", "objective",
                                  "no-data", "wwm-nsp", "decoder-mlm", "one-document", "bad-init", "max-length"])
def test_bad_input_exits_2_with_one_line(tmp_path, text_file, capsys, case):
    f = tmp_path / "t.jsonl"
    data = ["--text", str(f)]
    if case == "malformed":
        f.write_text('{"text": "fine"}\n\n{"text": "oops",\n')
        needle = f"{f}:3: malformed JSON"
    elif case == "empty":
        f.write_text("")
        needle = f"{f}: file is empty"
    elif case == "no-text-field":
        f.write_text('{"text": "fine"}\n{"body": "x"}\n')
        needle = f"{f}:2: missing field 'text'"
    elif case == "one-document":
        f.write_text('{"text": "alone"}\n')
        needle = "at least 2"
    else:
        data = ["--text", str(text_file)]
        needle = {"missing": None, "corpus": "invalid choice: 'reddit'", "objective": "invalid choice: 'gpt'",
                  "no-data": "no training text", "wwm-nsp": "--whole-word-masking applies to --objective mlm only",
                  "decoder-mlm": "--decoder-init applies to --objective infilling only", "bad-init": "--init",
                  "max-length": "--max-length 100: the model has 64 positions"}[case]
    extra = {"missing": ["--text", str(tmp_path / "nope.txt")], "corpus": ["--corpus", "reddit"],
             "objective": ["--objective", "gpt"], "wwm-nsp": ["--objective", "mlm+nsp", "--whole-word-masking"],
             "decoder-mlm": ["--decoder-init", "shared"], "bad-init": ["--init", str(tmp_path / "no_model")],
             "max-length": ["--max-length", "100"]}.get(case, [])
    if case == "missing":
        data, needle = [], f"{tmp_path / 'nope.txt'}: file not found"
    if case == "no-data":
        data = []
    out = tmp_path / "out"
    code, _, err = call(capsys, *data, "--output-dir", str(out), "--max-steps", "1", *TINY, *extra)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("pretrain.py: error: ")
    assert not out.exists()


def test_bad_input_in_a_real_process(tmp_path):
    """The same contract seen from outside: exit status 2, one stderr line, no traceback."""
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "x"}\n[1, 2]\n')
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--text", str(bad), "--output-dir", str(tmp_path / "o"), *TINY],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"pretrain.py: error: {bad}:2: expected a JSON object, got list"


def test_every_recipe_field_is_a_flag_with_help():
    from dataclasses import fields
    actions = {a.dest: a for a in script.build_parser()._actions}
    for f in fields(P.PretrainRecipe):
        assert f.name in actions and actions[f.name].help, f.name


def test_help_parses_without_torch():
    """`pretrain.py --help` and `eval_mlm.py --help` stay fast: argument parsing imports no torch."""
    code = ("import sys; from genbert.recipes import pretrain; pretrain.build_parser(); pretrain.eval_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
