import importlib.util
import warnings
from pathlib import Path

import pytest

from conftest import minilm_dir
from genbert.tokenization import SPM_FILE, SPM_RESERVED, Tokenizer, train_sentencepiece


# ---------------------------------------------------------------- WordPiece
def test_wordpiece_ids_and_round_trip(wordpiece):
    tok = wordpiece
    assert tok.kind == "wordpiece"
    assert (tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id, tok.unk_token_id) == (0, 101, 102, 103, 100)
    assert len(tok) == tok.vocab_size == 30522
    assert tok.special_ids >= {0, 100, 101, 102, 103}
    ids = tok.encode("Hello world")
    assert ids and not set(ids) & tok.special_ids
    assert tok.decode(ids) == "hello world"
    full = tok.encode("hello world", add_special_tokens=True)
    assert full[0] == 101 and full[-1] == 102 and full[1:-1] == ids
    assert tok.decode(full) == "hello world"
    assert tok.decode(full, skip_special_tokens=False) == "[CLS] hello world [SEP]"


def test_wordpiece_subwords_and_cleanup(wordpiece):
    text = "tokenization isn't hard, is it?"
    ids = wordpiece.encode(text)
    assert any(wordpiece.id_to_token(i).startswith("##") for i in ids)
    assert wordpiece.decode(ids) == text


def test_wordpiece_truncation_and_batch(wordpiece):
    long = "one two three four five six seven eight"
    assert len(wordpiece.encode(long, max_length=3)) == 3
    ids = wordpiece.encode(long, max_length=4, add_special_tokens=True)
    assert len(ids) == 4 and ids[0] == 101 and ids[-1] == 102
    batch = wordpiece.batch_encode(["hello world", long], max_length=5)
    assert batch == [wordpiece.encode("hello world", max_length=5), wordpiece.encode(long, max_length=5)]
    assert wordpiece.batch_encode([]) == []


def test_wordpiece_plain_text_never_gives_special_ids(wordpiece):
    ids = wordpiece.encode("a [MASK] b [SEP] c [CLS] [PAD]")
    assert not set(ids) & wordpiece.special_ids


def test_wordpiece_save_round_trip(wordpiece, tmp_path):
    wordpiece.save(tmp_path / "tok")
    again = Tokenizer.from_dir(tmp_path / "tok")
    assert again.kind == "wordpiece" and len(again) == len(wordpiece)
    text = "The quick brown fox jumps over the lazy dog."
    assert again.encode(text) == wordpiece.encode(text)
    assert again.mask_token_id == 103


def test_wordpiece_from_vocab_txt_only(tmp_path):
    d = tmp_path / "vocab_only"
    d.mkdir()
    (d / "vocab.txt").write_bytes((minilm_dir() / "vocab.txt").read_bytes())
    tok = Tokenizer.from_dir(d)
    assert tok.encode("hello world") == [7592, 2088]


def test_from_dir_errors(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "empty_dir" / "README.md").write_text("not a tokenizer")
    with pytest.raises(ValueError, match="empty_dir"):
        Tokenizer.from_dir(tmp_path / "empty_dir")
    with pytest.raises(ValueError, match="missing_dir"):
        Tokenizer.from_dir(tmp_path / "missing_dir")


# ---------------------------------------------------------------- sentencepiece
def test_spm_reserved_ids(spm_tok):
    tok = spm_tok
    assert tok.kind == "sentencepiece" and len(tok) == 300
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    assert SPM_RESERVED == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert tok.special_ids == {0, 1, 2, 3, 4}
    assert [tok.id_to_token(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def test_spm_round_trip_and_no_special_ids(spm_tok, titles):
    for title in titles[:50]:
        text = " ".join(title.lower().split())
        ids = spm_tok.encode(text)
        assert ids and min(ids) >= len(SPM_RESERVED), text
        assert spm_tok.decode(ids) == text
    ids = spm_tok.encode("a [mask] b [sep] c [cls] [pad]")
    assert not set(ids) & {0, 2, 3, 4}
    # lowercasing is built into the model
    assert spm_tok.encode(titles[0]) == spm_tok.encode(titles[0].lower())


def test_spm_special_tokens_and_truncation(spm_tok, titles):
    text = titles[1].lower()
    body = spm_tok.encode(text)
    full = spm_tok.encode(text, add_special_tokens=True)
    assert full == [2, *body, 3]
    assert spm_tok.decode(full) == " ".join(text.split())
    shown = spm_tok.decode(full, skip_special_tokens=False)
    assert shown.startswith("[CLS] ") and shown.endswith(" [SEP]")
    assert spm_tok.decode([*body, 0, 0, 0]) == spm_tok.decode(body)
    cut = spm_tok.encode(text, max_length=4, add_special_tokens=True)
    assert cut == [2, *body[:2], 3]
    assert spm_tok.batch_encode([text, "x"], max_length=3) == [body[:3], spm_tok.encode("x")[:3]]


def test_spm_save_and_from_dir(spm_tok, tmp_path, titles):
    spm_tok.save(tmp_path / "copy")
    assert (tmp_path / "copy" / SPM_FILE).is_file()
    again = Tokenizer.from_dir(tmp_path / "copy")
    assert again.kind == "sentencepiece" and len(again) == len(spm_tok)
    assert again.encode(titles[3]) == spm_tok.encode(titles[3])
    assert again.mask_token_id == 4


def test_spm_training_writes_model_and_is_deterministic(titles, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = train_sentencepiece(titles, tmp_path / "a", vocab_size=250)
        b = train_sentencepiece(titles, tmp_path / "b", vocab_size=250)
    assert (tmp_path / "a" / SPM_FILE).read_bytes() == (tmp_path / "b" / SPM_FILE).read_bytes()
    assert Tokenizer.from_dir(tmp_path / "a").encode(titles[0]) == b.encode(titles[0]) == a.encode(titles[0])


def test_spm_too_large_vocab_is_lowered(titles, tmp_path):
    with pytest.warns(UserWarning, match="vocab_size=50000") as rec:
        tok = train_sentencepiece(titles, tmp_path / "big", vocab_size=50000)
    assert len([w for w in rec if "vocab_size" in str(w.message)]) == 1
    assert len(SPM_RESERVED) < len(tok) < 50000
    assert tok.mask_token_id == 4
    text = titles[5].lower()
    assert tok.decode(tok.encode(text)) == " ".join(text.split())


def test_spm_bpe_and_case_preserving(titles, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = train_sentencepiece(titles, tmp_path / "bpe", vocab_size=300, model_type="bpe", lowercase=False)
    assert tok.decode(tok.encode(titles[2])) == " ".join(titles[2].split())
    assert tok.cls_token_id == 2


def test_spm_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        train_sentencepiece(["", "  "], tmp_path / "x", vocab_size=100)
    with pytest.raises(ValueError):
        train_sentencepiece(["some text"], tmp_path / "y", vocab_size=100, model_type="nope")
