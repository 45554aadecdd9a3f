"""No stutter: word-level repeat blocking (genbert.words) in generation, and the stutter metric."""
import pytest
import torch

from genbert import DecoderConfig, GenBert, TextGenerator
from genbert.generation import GenerationConfig, apply_constraints
from genbert.metrics import repeated_content_word_share
from genbert.words import CONT, SEP, START, SourceNumbers, SourceWords, WordVocab, content_words, is_content_word
from conftest import padded_batch, tiny_config

# a 99-token vocabulary for the tiny models: 0-3 special, punctuation, function words, content
# words, WordPiece continuations
PUNCT = [",", ".", "'", "-", ":", "!"]
FUNCTION = ["the", "a", "of", "to", "in", "and", "on", "for", "at", "by", "with", "from", "as", "is", "was",
            "be", "it", "he", "she", "they"]
TOKENS = (["[PAD]", "[CLS]", "[SEP]", "[MASK]"] + PUNCT + FUNCTION + [f"w{i}" for i in range(30, 80)]
          + [f"##x{i}" for i in range(80, 99)])
assert len(TOKENS) == 99
VOCAB = WordVocab.from_tokens(TOKENS, special_ids=[0, 1, 2, 3])


def test_vocab_kinds_and_words():
    assert [VOCAB.kinds[i] for i in (0, 2, 4, 6, 10, 30, 80)] == [SEP, SEP, SEP, SEP, START, START, CONT]
    ids = [30, 80, 81, 10, 4, 82, 31, 80]  # w30x80x81 the , x82 w31x80
    words, cur = VOCAB.split(ids)
    assert [VOCAB.text(w) for w in words] == ["w30x80x81", "the", "x82"] and VOCAB.text(cur) == "w31x80"
    assert VOCAB.head(words[0]) == (30,)
    sp = WordVocab.from_tokens(["[PAD]", "\u2581nhs", "'s", "\u2581", "x", "\u2581-", "-"], [0], sentencepiece=True)
    assert sp.kinds == [SEP, START, CONT, START, CONT, SEP, SEP]
    words, cur = sp.split([1, 2, 3, 4, 5, 3, 6])  # nhs's x - (a bare "▁" before "-" is no word)
    assert [sp.text(w) for w in words] == ["nhs's", "x"] and cur == ()
    assert sp.head((3, 4)) == (3, 4)


def test_banned_content_words_and_ngrams():
    # w30x80 w31 the: another word starting w30 or w31 is banned, "the" is not
    assert VOCAB.banned([30, 80, 31, 10], content_words=True) == {30, 31}
    assert VOCAB.banned([30, 80, 31, 10]) == set()
    # the open word counts: right after "w31", a new "w31" would repeat it; a continuation would not
    assert 31 in VOCAB.banned([31], content_words=True) and 80 not in VOCAB.banned([31], content_words=True)
    # word bigrams: "the w30" was said; after "... the" the next word cannot be w30 again
    assert VOCAB.banned([10, 30, 31, 10], ngram_size=2) == {30}
    assert VOCAB.banned([10, 30, 31, 4, 10], ngram_size=2) == {30}  # punctuation is not a word
    assert VOCAB.banned([10, 30, 80, 31, 10], ngram_size=2) == {30}  # w30x80 starts with w30: banned
    assert VOCAB.banned([10, 30, 10], ngram_size=1) == {10, 30}
    # a word that starts after punctuation with a continuation piece ("nhs ' s" -> "s")
    assert VOCAB.banned([82, 4], content_words=True) == {82}  # cur is empty: "##x82" would start a word
    assert VOCAB.banned([82, 4, 31], content_words=True) == {31}  # here "##x82" would continue w31
    # sentencepiece: a word that starts with a bare "▁" is banned at its first piece with characters
    sp = WordVocab.from_tokens(["[PAD]", "\u2581", "xy", "\u2581ab", "cd"], [0], sentencepiece=True)
    assert sp.banned([1, 2, 3], content_words=True) == {3}  # "xy" can only come back after a bare "▁"
    assert sp.banned([1, 2, 3, 1], content_words=True) == {2, 3}
    # a word whose first piece is a function word is told apart at its second ("be ##ckham")
    be = WordVocab.from_tokens(["[PAD]", "be", "##ckham", "w"], [0])
    assert be.head((1, 2)) == (1, 2) and be.head((1,)) == (1,)
    assert be.banned([1, 2, 3], content_words=True) == set()  # "be" stays free
    assert be.banned([1, 2, 3, 1], content_words=True) == {2}


@pytest.mark.parametrize("text, word", [
    ("devos confirms", "devos"), ("suicide bomb", "bomb"), ("new nhs trust: nhs's", "nhs"),
    ("kabul court in afghan", "court"),
])
def test_real_tokenizers_block_a_repeated_word(wordpiece, spm_tok, text, word):
    """Generating `word` again after `text`: some token of it is banned (WordPiece: the first)."""
    for tok in (wordpiece, spm_tok):
        vocab = WordVocab.from_tokenizer(tok)
        prefix, full = tok.encode(text), tok.encode(f"{text} {word}")
        assert full[:len(prefix)] == prefix
        blocked = [k for k in range(len(prefix), len(full))
                   if full[k] in vocab.banned(full[:k], content_words=True)]
        assert blocked, (tok.kind, [tok.id_to_token(i) for i in full])
        if tok.kind == "wordpiece":
            assert blocked[0] == len(prefix)
        assert not [k for k in range(len(prefix), len(full))
                    if full[k] in vocab.banned(full[:k], content_words=False)]


def test_real_wordpiece_examples(wordpiece):
    vocab = WordVocab.from_tokenizer(wordpiece)
    name = {i: wordpiece.id_to_token(i) for i in range(len(wordpiece))}
    banned = vocab.banned(wordpiece.encode("suicide bomb"), content_words=True)
    # the words themselves and the one-token words of their stems ("bomb" ... "bombing")
    assert {name[i] for i in banned} == {"suicide", "bomb", "suicidal", "bombs", "bombing", "bombed", "bombings"}
    ids = wordpiece.encode("new nhs trust: nhs's nhs")
    assert {name[i] for i in vocab.banned(ids, ngram_size=2)} == {"trust", "s"}
    assert "the" not in {name[i] for i in vocab.banned(wordpiece.encode("the man and the"), content_words=True)}


def _words(row, eos=2):
    row = row[:row.index(eos)] if eos in row else row
    words, cur = VOCAB.split(row)
    return words + ([cur] if VOCAB.text(cur) else [])


def _content_repeat(row) -> bool:
    heads = [VOCAB.head(w) for w in _words(row) if is_content_word(VOCAB.text(w))]
    return len(set(heads)) < len(heads)


def _bigram_repeat(row) -> bool:
    keys = [VOCAB.text(w) for w in _words(row)]
    grams = list(zip(keys, keys[1:]))
    return len(set(grams)) < len(grams)


KINDS = {"prefix": dict(mask_scheme="prefix"), "causal": dict(mask_scheme="causal"),
         "encoder-decoder": dict(decoder=DecoderConfig(num_hidden_layers=2))}
STRATEGIES = {"greedy": dict(), "beam": dict(num_beams=3), "sample": dict(do_sample=True, top_k=20)}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generation_never_repeats_and_cached_equals_uncached(kind, strategy):
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS[kind])).eval()
    ids, am = padded_batch([9, 6, 3, 7], low=4)

    def gen(**kw):
        if STRATEGIES[strategy].get("do_sample"):
            kw["generator"] = torch.Generator().manual_seed(7)
        return model.generate(ids, am, max_new_tokens=16, word_vocab=VOCAB, **STRATEGIES[strategy], **kw)

    plain = gen()
    for opts, repeat in ((dict(no_repeat_content_words=True), _content_repeat),
                         (dict(no_repeat_word_ngram_size=2), _bigram_repeat)):
        out = gen(**opts)
        assert torch.equal(out, gen(use_cache=False, **opts))
        assert not any(repeat(row) for row in out.tolist())
    both = gen(no_repeat_content_words=True, no_repeat_word_ngram_size=2, no_repeat_ngram_size=2)
    assert not any(_content_repeat(r) or _bigram_repeat(r) for r in both.tolist())
    # without the options the same decoding repeats (the tiny random models stutter)
    assert any(_content_repeat(r) or _bigram_repeat(r) for r in plain.tolist())


def test_apply_constraints_bans_the_word_heads():
    logp = torch.log_softmax(torch.randn(2, 99), -1)
    gen = torch.tensor([[30, 80, 10, 31], [10, 11, 12, 13]])
    cfg = GenerationConfig(no_repeat_content_words=True, word_vocab=VOCAB)
    out = apply_constraints(logp.clone(), gen, cfg, eos=2)
    assert torch.isinf(out[0, [30, 31]]).all() and torch.isfinite(out[0, [2, 10, 32, 80]]).all()
    assert torch.equal(out[1], logp[1])
    assert torch.equal(apply_constraints(logp.clone(), gen[:, :0], cfg, eos=2), logp)


def test_source_words_table():
    # [CLS] w30x80x81 the w31x82 , w30x83 [SEP]
    table = SourceWords(VOCAB, [1, 30, 80, 81, 10, 31, 82, 4, 30, 83, 2])
    assert table.allowed(()) == ([], True)
    assert table.allowed((30,)) == ([80, 83], True)  # "w30" may end: one piece is a vocabulary word
    assert table.allowed((30, 80)) == ([81], False)  # "w30x80" is no source word: it must go on
    assert table.allowed((30, 80, 81)) == ([], True) and table.allowed((30, 83)) == ([], True)
    assert table.allowed((32,)) == ([], True) and table.allowed((10,)) == ([], True)


@pytest.mark.parametrize("kind", ["wordpiece", "sentencepiece"])
def test_source_words_on_real_tokenizers(wordpiece, spm_tok, kind):
    """A name of several pieces can be spelled on from its first piece, and only along the source."""
    tok = wordpiece if kind == "wordpiece" else spm_tok
    vocab = WordVocab.from_tokenizer(tok)
    source = tok.encode("Pernod takeover talk lifts Domecq shares, says Kostas Kenteris")
    table = SourceWords(vocab, source)
    for name in ("Domecq", "Kenteris"):
        pieces = tuple(tok.encode(name, add_special_tokens=False))
        assert len(pieces) > 1, [tok.id_to_token(i) for i in pieces]
        assert pieces in table.whole
        for m in range(1, len(pieces)):
            allowed, may_end = table.allowed(pieces[:m])
            assert pieces[m] in allowed and all(vocab.kinds[i] == CONT for i in allowed)
            assert may_end == (m == 1)  # one piece is a vocabulary word; more must go on to a source word
        assert table.allowed(pieces) == ([], True)


def _invented(row, source, eos=2):
    """Multi-piece words of `row` that are no word of `source` (the last may be cut by the length)."""
    table = SourceWords(VOCAB, source)
    words = _words(row, eos)
    cut = eos not in row
    return [w for i, w in enumerate(words) if len(w) > 1 and w not in table.whole
            and not (cut and i == len(words) - 1 and w in table.next)]


@pytest.mark.parametrize("kind, strategy", [(k, s) for k in sorted(KINDS) for s in ("greedy", "beam")]
                         + [("diffusion", "greedy")])
def test_copy_subwords_only_spells_source_words(kind, strategy):
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS.get(kind, dict(mask_scheme="bidirectional")))).eval()
    for p in model.parameters():  # wide weights: varied outputs, and plenty of continuation pieces
        torch.nn.init.normal_(p, std=0.2)
    ids, am = padded_batch([12, 9, 5, 11], low=4, seed=3)
    sources = [r[:n] for r, n in zip(ids.tolist(), am.sum(1).tolist())]

    def gen(ids, am, **kw):
        # the copy prior and no token twice keep the tiny model from writing one token over and over
        if kind == "diffusion":  # (diffusion: pieces committed in any order, words grown left to right)
            return model.generate(ids, am, max_new_tokens=12, steps=6, word_vocab=VOCAB, copy_bias=2.0,
                                  no_repeat_content_words=True, collapse_repeats=False, **kw)
        return model.generate(ids, am, max_new_tokens=12, word_vocab=VOCAB, copy_bias=2.0, no_repeat_ngram_size=1,
                              **STRATEGIES[strategy], **kw)

    plain, copied = gen(ids, am), gen(ids, am, copy_subwords=True)
    assert any(_invented(r, s) for r, s in zip(plain.tolist(), sources))  # the test can fail
    assert not any(_invented(r, s) for r, s in zip(copied.tolist(), sources))
    if kind != "diffusion":  # (the tiny diffusion model writes no source word whole: test_copy_subwords_in_a_block)
        assert any(len(w) > 1 for r in copied.tolist() for w in _words(r))  # and still copies some
    assert torch.equal(copied, gen(ids, am, copy_subwords=True, use_cache=False))
    alone = gen(ids[2:3, :5], am[2:3, :5], copy_subwords=True)  # a padded row gets what it gets alone
    assert alone[0].tolist() == [t for t in copied[2].tolist()][:alone.shape[1]]


def test_copy_subwords_in_a_block():
    """Diffusion: a continuation piece only right after a written piece, along a source word."""
    from genbert.generation import CopySubwords
    m = 3  # [MASK]
    src = torch.tensor([[1, 30, 80, 81, 10, 31, 82, 2]])  # w30x80x81 the w31x82
    sub = CopySubwords(VOCAB, src, torch.ones_like(src), 1, 99)
    cont = [i for i in range(99) if VOCAB.kinds[i] == CONT]

    def allowed(row, start=0):
        scores = torch.zeros(1, len(row) - start, 99)
        sub.apply_block(scores, torch.tensor([row]), start, m)
        return [set(torch.isfinite(scores[0, j]).nonzero().flatten().tolist()) for j in range(scores.shape[1])]

    a = allowed([30, m, m, 10, m])
    assert a[1] & set(cont) == {80} and 31 in a[1]  # after "w30": its next piece, or a new word
    assert not a[2] & set(cont) and not a[4] & set(cont)  # after a masked position, after "the"
    assert a[0] == set(range(99))  # written positions are left alone
    assert allowed([30, 80, m])[2] == {81}  # "w30x80" is no source word: it must go on
    assert not allowed([30, m, 10])[1] & set(cont)  # "w30x80" would be cut short by the written "the"
    assert allowed([31, m, 10])[1] & set(cont) == {82}  # "w31x82" is a whole source word
    assert allowed([m, 30, 80, m], start=2)[1] == {81}  # the block starts after the word's first piece


@pytest.mark.parametrize("bad, message", [
    (dict(copy_subwords=True), "word_vocab"), (dict(copy_subwords=1, word_vocab=VOCAB), "copy_subwords"),
    (dict(no_repeat_content_words=True), "word_vocab"), (dict(no_repeat_word_ngram_size=2), "word_vocab"),
    (dict(no_repeat_word_ngram_size=-1, word_vocab=VOCAB), "no_repeat_word_ngram_size"),
    (dict(no_repeat_content_words=1, word_vocab=VOCAB), "no_repeat_content_words"),
])
def test_bad_word_arguments(bad, message):
    model = GenBert(tiny_config(mask_scheme="prefix")).eval()
    ids, am = padded_batch([5], low=4)
    with pytest.raises(ValueError, match=message):
        model.generate(ids, am, max_new_tokens=4, **bad)


def test_diffusion_takes_content_words_not_word_ngrams():
    """Diffusion commits tokens in any order: no repeated content word works there (see
    test_diffusion), a word n-gram, which needs the words before it, does not."""
    model = GenBert(tiny_config(mask_scheme="bidirectional")).eval()
    ids, am = padded_batch([5], low=4)
    with pytest.raises(ValueError, match="not supported by diffusion"):
        model.generate(ids, am, max_new_tokens=4, word_vocab=VOCAB, no_repeat_word_ngram_size=2)
    with pytest.raises(ValueError, match="copy_subwords.*remask"):
        model.generate(ids, am, max_new_tokens=4, word_vocab=VOCAB, copy_subwords=True, remask=True)
    out = model.generate(ids, am, max_new_tokens=4, word_vocab=VOCAB, no_repeat_content_words=True)
    assert out.shape[0] == 1


# ---------------------------------------------------------------- TextGenerator
SETTINGS = {"max_source_length": 24, "max_new_tokens": 10, "num_beams": 2, "no_repeat_ngram_size": 3}


@pytest.fixture(scope="module")
def wordpiece_generator(wordpiece):
    torch.manual_seed(0)
    model = GenBert(tiny_config(vocab_size=len(wordpiece), mask_scheme="prefix", max_position_embeddings=48))
    return TextGenerator(model, wordpiece, SETTINGS, device="cpu")


SOURCES = ["Time Warner said fourth quarter sales rose 2% to $11.1bn from $10.9bn.",
           "A suicide bomb attack on a court in the Afghan capital Kabul killed five people.",
           "The dollar has hit its highest level against the euro in almost three months.",
           "Shares in UK drinks and food firm Allied Domecq have risen on speculation."]


def test_text_generator_takes_the_word_options_from_calls_and_settings(wordpiece_generator):
    gen = wordpiece_generator
    plain = gen.generate(SOURCES)
    blocked = gen.generate(SOURCES, no_repeat_content_words=True)
    assert repeated_content_word_share(plain) >= 0.5  # a random model stutters
    assert repeated_content_word_share(blocked) == 0.0
    stored = TextGenerator(gen.model, gen.tokenizer, {**SETTINGS, "no_repeat_content_words": True}, device="cpu")
    assert stored.generate(SOURCES) == blocked
    assert stored.generate(SOURCES, no_repeat_content_words=False) == plain
    both = gen.generate(SOURCES, no_repeat_content_words=True, no_repeat_word_ngram_size=2)
    assert repeated_content_word_share(both) == 0.0


def test_cli_word_options(wordpiece_generator, tmp_path, capsys):
    from genbert.cli import generate_main
    wordpiece_generator.save_pretrained(tmp_path / "m")
    (tmp_path / "in.txt").write_text("\n".join(SOURCES) + "\n")
    generate_main([str(tmp_path / "m"), str(tmp_path / "in.txt"), "--no-repeat-content-words",
                   "--no-repeat-word-ngram-size", "2", "--device", "cpu"])
    expected = wordpiece_generator.generate(SOURCES, no_repeat_content_words=True, no_repeat_word_ngram_size=2)
    assert capsys.readouterr().out.splitlines() == expected
    generate_main([str(tmp_path / "m"), str(tmp_path / "in.txt"), "--copy-subwords", "--copy-bias", "2",
                   "--device", "cpu"])
    assert capsys.readouterr().out.splitlines() == wordpiece_generator.generate(SOURCES, copy_subwords=True,
                                                                                copy_bias=2.0)
    generate_main([str(tmp_path / "m"), str(tmp_path / "in.txt"), "--copy-numbers", "--device", "cpu"])
    assert capsys.readouterr().out.splitlines() == wordpiece_generator.generate(SOURCES, copy_numbers=True)


def test_text_generator_output_is_clean_text(wordpiece_generator, wordpiece, monkeypatch):
    text = "voters 'don't trust' e-cigarette firms, says u.s. report: sales up 5.3%"
    ids = torch.tensor([wordpiece.encode(text) + [wordpiece.sep_token_id]])
    monkeypatch.setattr(wordpiece_generator.model, "generate", lambda *a, **k: ids)
    assert wordpiece_generator.generate("anything") == text


# ---------------------------------------------------------------- the metric
def test_content_words():
    assert content_words("New NHS trust: NHS's nhs trust'") == ["new", "nhs", "trust", "nhs", "nhs", "trust"]
    assert content_words("the 3-3 draw in 2005 for u.s. e-cigarette") == ["draw", "2005", "cigarette"]
    assert not is_content_word("The") and is_content_word("Kabul") and is_content_word("2005")
    assert not is_content_word("3") and is_content_word("40")
    assert is_content_word("us")  # lowercased news: the country, which a headline should not write twice


def test_repeated_content_word_share():
    stutter = ["devos confirms devos to serve as education secretary",
               "suicide bomb bomb blasts kabul court in afghan court",
               "new nhs trust: nhs's nhs trust'"]
    clean = ["the man and the dog", "3-3 draw for 3 teams", "Bomb blasts Kabul court", ""]
    assert repeated_content_word_share(stutter) == 1.0
    assert repeated_content_word_share(clean) == 0.0
    assert repeated_content_word_share(stutter + clean[:1]) == 0.75
    assert repeated_content_word_share(["Kabul bomb, kabul"]) == 1.0  # case-insensitive
    assert repeated_content_word_share([]) == 0.0
    stems = ["conservatives plan hiv test tests", "the blog blogs on", "bomb bombing in kabul"]
    assert repeated_content_word_share(stems) == 0.0  # other words
    assert repeated_content_word_share(stems, stems=True) == 1.0  # one stem
    assert repeated_content_word_share(clean, stems=True) == 0.0


# ---------------------------------------------------------------- copy_numbers
# a 99-token vocabulary in which numbers are common: digit groups, their continuation pieces, joiners
NUM_TOKENS = (["[PAD]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-", ":", "%", "$", "'", "the", "to", "in"]
              + [str(i) for i in range(38)] + ["000", "300"] + [f"w{i}" for i in range(54, 84)]
              + ["##bn", "##m", "##s"] + [f"##{i}" for i in range(12)])
assert len(NUM_TOKENS) == 99
NUM = WordVocab.from_tokens(NUM_TOKENS, special_ids=[0, 1, 2, 3])
T = {t: i for i, t in enumerate(NUM_TOKENS)}


def _ids(text: str) -> list[int]:
    return [T[t] for t in text.split()]


def test_numbers_of_a_token_sequence():
    found, last = NUM.numbers(_ids("w54 1 . 13 ##bn in 2 . w55 5 , 000 ##m 3 - 1 . $ ##7 ##s 7"))
    text = lambda n: " ".join(NUM_TOKENS[i] for i in n)  # noqa: E731
    # "2 ." is a number and a full stop; a joiner starts nothing; "$ ##7 ##s": the "##7" starts it
    assert [text(n) for n in found] == ["1 . 13 ##bn", "2", "5 , 000 ##m", "3 - 1", "##7 ##s"]
    assert text(last) == "7" and NUM.numbers(_ids("w54 5 ,"))[1] == tuple(_ids("5 ,"))
    # a comma joins a thousands group ("5,000") only: "1.13bn, 1" and "3711, 300" are two numbers each
    table = SourceNumbers(NUM, _ids("w54 1 . 13 ##bn , 1 w55 5 , 000 in 37 ##11 , 300 ."))
    assert {text(n) for n in table.whole} == {"1 . 13 ##bn", "1", "5 , 000", "37 ##11", "300"}
    assert table.allowed(tuple(_ids("1"))) == (_ids("."), True)  # "1" is whole, and "1.13bn" goes on
    assert table.allowed(tuple(_ids("1 ."))) == (_ids("13"), False)  # after a joiner: must go on
    assert table.allowed(tuple(_ids("5"))) == (_ids(","), False)  # "5" alone is no source number
    assert table.allowed(tuple(_ids("1 . 13 ##bn"))) == ([], True)
    assert table.allowed(tuple(_ids("7"))) == ([], True)  # no prefix of a source number: left alone
    assert [NUM_TOKENS[i] for i in table.starts] == ["1", "5", "37", "300"]
    # a currency sign inside a piece: "£52" is "£5 ##2"
    gbp = WordVocab.from_tokens(["[PAD]", "£5", "##2", "£", "w"], [0])
    assert gbp.digit_tokens() == [False, True, True, False, False]
    assert gbp.numbers([4, 1, 2, 4, 3]) == ([(1, 2)], ())
    gbp = WordVocab.from_tokens(["[PAD]", "£2", ",", "000", "£", "w"], [0])  # "£2,000": one number
    assert gbp.numbers([5, 1, 2, 3, 5]) == ([(1, 2, 3)], ())
    # sentencepiece: "▁1 . 13 bn" (pieces without "▁" continue the group), "▁2004"
    sp = WordVocab.from_tokens(["[PAD]", "\u25811", ".", "13", "bn", "\u2581in", "\u25812004"], [0], sentencepiece=True)
    assert sp.numbers([1, 2, 3, 4, 5, 6, 2]) == ([(1, 2, 3, 4)], (6, 2))  # open, "." may still join


def _numbers_not_copied(row, source, eos=2):
    """Numbers of `row` that are no whole number of `source` (the last may be cut by the length)."""
    table = SourceNumbers(NUM, source)
    cut = eos not in row
    found, last = NUM.numbers(row[:row.index(eos)] if eos in row else row)
    if last:
        found.append(last)
    return [n for i, n in enumerate(found) if n not in table.whole
            and not (cut and i == len(found) - 1 and n in table.next)]


@pytest.mark.parametrize("kind, strategy", [(k, s) for k in sorted(KINDS) for s in ("greedy", "beam")])
def test_copy_numbers_only_writes_source_numbers(kind, strategy):
    torch.manual_seed(0)
    model = GenBert(tiny_config(**KINDS[kind])).eval()
    for p in model.parameters():  # wide weights: varied outputs, and plenty of digit pieces
        torch.nn.init.normal_(p, std=0.2)
    ids, am = padded_batch([12, 9, 5, 11], low=4, seed=5)
    sources = [r[:n] for r, n in zip(ids.tolist(), am.sum(1).tolist())]

    def gen(ids, am, **kw):
        return model.generate(ids, am, max_new_tokens=12, word_vocab=NUM, copy_bias=2.0, no_repeat_ngram_size=1,
                              **STRATEGIES[strategy], **kw)

    def side_by_side(row):  # a number that starts right after another ends ("£5 800,000")
        return any(NUM.numbers(row[:t])[1] and not NUM.joiner(row[t - 1]) and NUM.digit_tokens()[row[t]]
                   and NUM.kind(row[t]) == START for t in range(1, len(row)))

    plain, copied = gen(ids, am), gen(ids, am, copy_numbers=True)
    assert any(_numbers_not_copied(r, s) for r, s in zip(plain.tolist(), sources))  # the test can fail
    assert any(side_by_side(r) for r in plain.tolist())
    assert not any(_numbers_not_copied(r, s) or side_by_side(r) for r, s in zip(copied.tolist(), sources))
    assert any(NUM.numbers(r)[0] for r in copied.tolist())  # and still writes some numbers
    both = gen(ids, am, copy_numbers=True, copy_subwords=True)
    assert not any(_numbers_not_copied(r, s) for r, s in zip(both.tolist(), sources))
    assert torch.equal(copied, gen(ids, am, copy_numbers=True, use_cache=False))
    alone = gen(ids[2:3, :5], am[2:3, :5], copy_numbers=True)  # a padded row gets what it gets alone
    assert alone[0].tolist() == copied[2].tolist()[:alone.shape[1]]


def test_copy_numbers_arguments():
    ids, am = padded_batch([5], low=4)
    prefix = GenBert(tiny_config(mask_scheme="prefix")).eval()
    with pytest.raises(ValueError, match="copy_numbers.*word_vocab"):
        prefix.generate(ids, am, max_new_tokens=4, copy_numbers=True)
    with pytest.raises(ValueError, match="copy_numbers"):
        prefix.generate(ids, am, max_new_tokens=4, copy_numbers="yes", word_vocab=NUM)
    diffusion = GenBert(tiny_config(mask_scheme="bidirectional")).eval()
    with pytest.raises(ValueError, match="copy_numbers.*diffusion"):
        diffusion.generate(ids, am, max_new_tokens=4, copy_numbers=True, word_vocab=NUM)
