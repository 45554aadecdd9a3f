"""Pairs and documents from wherever the `datasets` library reads them.

A *data spec* (``--dataset``) is, tried in this order:

* a built-in name (:data:`~genbert.data.datasets.NAMED_DATASETS`): genbert's offline datasets, as
  ``datasets.Dataset`` splits built from the same records in the same order as always;
* a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
  (``datasets.load_from_disk``; a single ``Dataset`` is the ``train`` split), or any other
  directory of data files that ``datasets.load_dataset(DIR)`` reads (split names from the file
  names: ``train.parquet``, ``validation.parquet``, ...);
* a file: parquet, arrow, JSON lines / JSON, CSV / TSV (or, for documents, text): one split;
* otherwise a `datasets` hub name, ``NAME`` or ``NAME:CONFIG`` (``cnn_dailymail:3.0.0``): from
  the datasets cache (all that is read with ``HF_HUB_OFFLINE=1``), else downloaded.

User JSONL / JSON / CSV / TSV pair and document files are read by genbert's validating readers
(:func:`~genbert.data.datasets.read_pairs`, :func:`~genbert.data.datasets.read_documents`),
whose errors name the file and line of a broken record (datasets' JSON and CSV builders say
neither), then wrapped as a ``datasets.Dataset``; everything else is read by datasets. A split is
read in batches from datasets' memory-mapped Arrow table, or as a stream (``streaming=True``):
nothing is copied whole into memory, nothing is written beside the user's data.

Every problem raises :class:`~genbert.data.datasets.DataError` with a one-line message naming
the flag, the source and, for a missing column, the columns there are.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

from .datasets import NAMED_DATASETS, SPLITS, DataError, load_named, read_documents, read_pairs

# file type -> (datasets builder, its options); one file is one split
FILE_BUILDERS: dict[str, tuple[str, dict[str, Any]]] = {
    ".parquet": ("parquet", {}), ".arrow": ("arrow", {}), ".jsonl": ("json", {}), ".json": ("json", {}),
    ".csv": ("csv", {}), ".tsv": ("csv", {"sep": "\t"}), ".txt": ("text", {}),
}
VALIDATED_PAIR_FILES = (".jsonl", ".json", ".csv", ".tsv")  # read_pairs: errors name file and line
BATCH = 1000  # rows read at a time


def import_datasets(progress: bool = False):
    """The `datasets` module, quiet: no progress bars (unless ``progress``) or info logs."""
    import datasets
    datasets.utils.logging.set_verbosity_error()
    if progress:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    return datasets


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return " ".join(text.splitlines()[0].split()) if text else type(e).__name__


def is_saved_dataset(path: Path) -> bool:
    """A directory written by ``save_to_disk`` (a DatasetDict or a Dataset)."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def describe(spec: str) -> str:
    """A short name for a spec: the built-in name, the file or directory name, or the hub name."""
    if spec in NAMED_DATASETS:
        return spec
    p = Path(spec)
    if p.is_dir():
        return p.resolve().name or "data"
    if p.exists() or p.suffix.lower() in FILE_BUILDERS:
        return p.stem or "data"
    return spec.replace("/", "-").replace(":", "-")


def hub_dataset_name(spec: Optional[str]) -> Optional[str]:
    """The hub dataset id of a spec that names one (``cnn_dailymail:3.0.0`` -> ``cnn_dailymail``), else None."""
    if not spec or spec in NAMED_DATASETS or Path(spec).exists() or Path(spec).suffix.lower() in FILE_BUILDERS:
        return None
    from ..hub import is_hub_id
    name = spec.partition(":")[0]
    return name if is_hub_id(name) else None


def load_split(spec: str, split: str = "train", *, streaming: bool = False, flag: str = "--dataset",
               split_flag: str = "--train-split", seed: int = 0):
    """Split ``split`` of the data spec ``spec`` as a ``datasets.Dataset`` (``IterableDataset``
    when ``streaming``). DataError names ``flag`` or ``split_flag``."""
    ds = import_datasets()
    if spec in NAMED_DATASETS:
        if split not in SPLITS:
            raise DataError(f"{split_flag} {split!r}: {spec} has the splits {', '.join(SPLITS)}")
        try:
            data = ds.Dataset.from_list(load_named(spec, split, seed))
        except (ModuleNotFoundError, FileNotFoundError) as e:
            raise DataError(f"{flag} {spec}: {_first_line(e)}") from None
        return data.to_iterable_dataset() if streaming else data
    path = Path(spec)
    if path.is_dir() and is_saved_dataset(path):
        try:
            loaded = ds.load_from_disk(str(path))
        except (OSError, ValueError) as e:
            raise DataError(f"{flag} {spec}: cannot read it with datasets.load_from_disk ({_first_line(e)})") from None
        if isinstance(loaded, ds.DatasetDict):
            if split not in loaded:
                raise DataError(f"{split_flag} {split!r}: {spec} has no such split (splits: {', '.join(loaded)})")
            loaded = loaded[split]
        elif split != "train":
            raise DataError(f"{split_flag} {split!r}: {spec} holds one Dataset (the train split), not a "
                            "DatasetDict")
        return loaded.to_iterable_dataset() if streaming else loaded
    if path.is_dir():
        return _load_dataset(ds, spec, str(path), {}, split, streaming, flag, split_flag)
    if path.is_file():
        builder, options = FILE_BUILDERS.get(path.suffix.lower(), (None, {}))
        if builder is None:
            raise DataError(f"{flag} {spec}: unsupported file type {path.suffix or '(none)'!r}; expected one of "
                            f"{', '.join(FILE_BUILDERS)}")
        if split != "train":
            raise DataError(f"{split_flag} {split!r}: {spec} is one file, one split (give the other split's "
                            "file with its own flag)")
        return _load_dataset(ds, spec, builder, {"data_files": str(path.resolve()), **options}, "train",
                             streaming, flag, split_flag)
    if path.exists():
        raise DataError(f"{flag} {spec}: not a file or directory")
    if path.suffix.lower() in FILE_BUILDERS:
        raise DataError(spec, "file not found")
    from ..hub import is_hub_id
    name, _, config = spec.partition(":")
    if not is_hub_id(name):
        raise DataError(f"{flag} {spec}: no such file or directory, and not a built-in dataset "
                        f"({', '.join(NAMED_DATASETS)}) or a datasets hub name (NAME or NAME:CONFIG)")
    return _load_dataset(ds, spec, name, {"name": config or None}, split, streaming, flag, split_flag)


def _load_dataset(ds, spec: str, path: str, options: dict[str, Any], split: str, streaming: bool, flag: str,
                  split_flag: str):
    from ..hub import hub_offline
    try:
        return ds.load_dataset(path, split=split, streaming=streaming, **options)
    except ValueError as e:
        if "split" in str(e).lower():
            raise DataError(f"{split_flag} {split!r}: {spec} has no such split ({_first_line(e)})") from None
        raise DataError(f"{flag} {spec}: {_first_line(e)}") from None
    except ds.exceptions.DatasetNotFoundError:
        raise DataError(f"{flag} {spec}: no such file or directory, and no such dataset on the Hugging Face hub "
                        "(or it is private: log in with `hf auth login`)") from None
    except ConnectionError as e:
        if hub_offline():
            raise DataError(f"{flag} {spec}: not a local file or directory, and the datasets cache lacks it "
                            "(HF_HUB_OFFLINE is set)") from None
        raise DataError(f"{flag} {spec}: cannot reach the Hugging Face hub ({_first_line(e)})") from None
    except (OSError, ds.exceptions.DatasetsError) as e:
        raise DataError(f"{flag} {spec}: {_first_line(e)}") from None


def _check_text_column(data, column: str, where: str, field_flag: str) -> None:
    """``column`` exists and holds text (a stream whose columns are unknown is checked as it is read)."""
    names = getattr(data, "column_names", None)
    if names is None:
        return
    if column not in names:
        raise DataError(f"{field_flag} {column!r}: {where} has no such column (columns: {', '.join(names)})")
    feature = (data.features or {}).get(column)
    dtype = getattr(feature, "dtype", None)
    if feature is not None and dtype not in ("string", "large_string"):
        raise DataError(f"{field_flag} {column!r}: the column of {where} holds {dtype or type(feature).__name__}, "
                        "not text")


def _text(value: Any, column: str, where: str, field_flag: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{field_flag} {column!r}: the column of {where} holds {type(value).__name__}, not text")
    return value.strip()


# --------------------------------------------------------------------------- pairs
class PairSplit:
    """The source/target pairs of one split, read in batches from a ``datasets.Dataset``:
    iterating gives ``{"id", "source", "target"}`` records (text stripped, pairs with an empty side
    skipped, the first ``limit``). ``len()`` is their number, ``skipped`` the empty ones."""

    def __init__(self, data, name: str, id_prefix: str = "train", source: str = "source", target: str = "target",
                 skipped: int = 0, limit: Optional[int] = None,
                 field_flags: tuple[str, str] = ("--source-field", "--target-field")):
        self.data, self.name, self.id_prefix, self.limit = data, name, id_prefix, limit
        self.columns = (source, target)
        self.field_flags = field_flags
        id_feature = (data.features or {}).get("id")
        self.has_ids = getattr(id_feature, "dtype", None) in ("string", "large_string")  # else "train:N"
        for column, field_flag in zip(self.columns, field_flags):
            _check_text_column(data, column, name, field_flag)
        self.skipped = skipped
        self._count = None

    def _rows(self) -> Iterator[dict]:
        src, tgt = self.columns
        wanted = [src, tgt] + (["id"] if self.has_ids else [])
        data = self.data.select_columns(list(dict.fromkeys(wanted)))
        kept = 0
        for start in range(0, len(data), BATCH):
            batch = data[start:start + BATCH]
            ids = batch["id"] if self.has_ids else None
            for i, (s, t) in enumerate(zip(batch[src], batch[tgt])):
                s = _text(s, src, self.name, self.field_flags[0])
                t = _text(t, tgt, self.name, self.field_flags[1])
                if not s or not t:
                    yield {}
                    continue
                yield {"id": ids[i] if ids is not None and ids[i] else f"{self.id_prefix}:{kept}", "source": s,
                       "target": t}
                kept += 1

    def __iter__(self) -> Iterator[dict]:
        n = 0
        for r in self._rows():
            if not r:
                continue
            if self.limit is not None and n >= self.limit:
                return
            yield r
            n += 1

    def __len__(self) -> int:
        if self._count is None:
            kept = empty = 0
            for r in self._rows():
                if r:
                    kept += 1
                else:
                    empty += 1
            self.skipped += empty
            self._count = kept if self.limit is None else min(kept, self.limit)
        return self._count

    def head(self, n: int) -> list[dict]:
        out = []
        for r in self:
            if len(out) >= n:
                break
            out.append(r)
        return out


def pair_split(spec: str, split: str = "train", source_field: str = "source", target_field: str = "target", *,
               flag: str = "--dataset", split_flag: str = "--train-split", id_prefix: Optional[str] = None,
               limit: Optional[int] = None, seed: int = 0, skip_empty: bool = True) -> PairSplit:
    """The pairs of ``split`` of a data spec (see the module docstring); records without an id
    of their own get ``"{id_prefix}:{n}"`` (default: the split). JSONL / JSON / CSV / TSV files
    go through :func:`read_pairs` (file:line errors); a built-in dataset has source and target
    fields of its own. ``skip_empty=False``: a pair with an empty side is an error."""
    ds = import_datasets()
    prefix = id_prefix or split
    path = Path(spec)
    if spec not in NAMED_DATASETS and not path.is_dir() and path.suffix.lower() in VALIDATED_PAIR_FILES:
        if split != "train":
            raise DataError(f"{split_flag} {split!r}: {spec} is one file, one split")
        records, skipped = read_pairs(spec, source_field, target_field, skip_empty=skip_empty)
        for i, r in enumerate(records):
            r["id"] = f"{prefix}:{i}"
        return PairSplit(ds.Dataset.from_list(records), str(spec), prefix, skipped=skipped, limit=limit)
    data = load_split(spec, split, flag=flag, split_flag=split_flag, seed=seed)
    if spec in NAMED_DATASETS:
        return PairSplit(data, spec, prefix, limit=limit)
    pairs = PairSplit(data, spec, prefix, source_field, target_field, limit=limit)
    n = len(pairs)  # one pass: counts the empty pairs too
    if not skip_empty and pairs.skipped:
        raise DataError(f"{flag} {spec}: {pairs.skipped} pair(s) of split {split!r} have an empty "
                        f"{source_field!r} or {target_field!r}")
    if n == 0:
        raise DataError(f"{flag} {spec}: split {split!r} has no usable pairs"
                        + (f" ({pairs.skipped} skipped as empty)" if pairs.skipped else ""))
    return pairs


# --------------------------------------------------------------------------- documents
def iter_documents(spec: str, split: str = "train", text_field: str = "text", *, streaming: bool = False,
                   flag: str = "--dataset", split_flag: str = "--train-split",
                   field_flag: str = "--text-field") -> Iterator[str]:
    """The non-empty texts of column ``text_field`` of a data spec's split, stripped, in order.
    Read in batches (or as a stream with ``streaming``): the split is never held in memory."""
    path = Path(spec)
    if spec not in NAMED_DATASETS and path.is_file() and path.suffix.lower() in (".jsonl", ".json") \
            and not streaming:
        yield from read_documents(spec, text_field)  # file:line errors
        return
    data = load_split(spec, split, streaming=streaming, flag=flag, split_flag=split_flag)
    _check_text_column(data, text_field, spec, field_flag)
    if streaming:
        for row in data:
            if text_field not in row:
                raise DataError(f"{field_flag} {text_field!r}: {spec} has no such column (columns: {', '.join(row)})")
            t = _text(row[text_field], text_field, spec, field_flag)
            if t:
                yield t
        return
    column = data.select_columns([text_field])
    for start in range(0, len(column), BATCH):
        for value in column[start:start + BATCH][text_field]:
            t = _text(value, text_field, spec, field_flag)
            if t:
                yield t
