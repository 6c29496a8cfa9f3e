"""aifc reads the Parquet files that pyarrow (and so pandas and the Hugging Face hub) writes:
every writer option that changes the bytes, against pyarrow's own reading of the same file."""
import itertools
import random

import pytest

import aifc

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _texts(n, seed):
    rng = random.Random(seed)
    alphabet = "abc xyz äöü ß 日本語 😀 \t\n\"\\"
    texts = []
    for i in range(n):
        if i % 5 == 0:  # repeats: dictionary entries and Snappy copies
            texts.append(texts[-1] if texts else "repeated prompt")
        elif i % 17 == 0:  # long: multi-byte Snappy literals, pages that split
            texts.append("".join(rng.choice(alphabet) for _ in range(70000)))
        else:
            texts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))))
    return texts


def _table(n, seed):
    rng = random.Random(seed)
    texts = _texts(n, seed)
    # Extra columns of other types, nulls and nesting: aifc must read past them.
    return pa.table({
        "flag": pa.array([None if i % 7 == 0 else i % 2 == 0 for i in range(n)], type=pa.bool_()),
        "prompt": texts,
        "output_tokens": pa.array([rng.randint(1, 500) for _ in range(n)], type=pa.int64()),
        "score": pa.array([rng.random() for _ in range(n)], type=pa.float32()),
        "small": pa.array([i % 100 for i in range(n)], type=pa.int8()),
        "when": pa.array([i * 1000 for i in range(n)], type=pa.timestamp("ms")),
        "blob": pa.array([bytes([i % 256, 0xFF]) if i % 3 else None for i in range(n)], type=pa.binary()),
        "tags": pa.array([{"k": str(i)} if i % 4 else None for i in range(n)],
                         type=pa.map_(pa.string(), pa.string())),
        "grid": pa.array([[[i], [], None] if i % 6 else [] for i in range(n)],
                         type=pa.list_(pa.list_(pa.int32()))),
        "label": pa.array([["x", "y", "z"][i % 3] for i in range(n)]).dictionary_encode(),
    })


OPTIONS = [
    dict(compression=compression, use_dictionary=dictionary, data_page_version=page_version,
         row_group_size=row_group, data_page_size=page_size)
    for compression, dictionary, page_version, (row_group, page_size) in itertools.product(
        ["none", "snappy", "gzip", "zstd"], [True, False], ["1.0", "2.0"], [(None, None), (7, 200)])
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_writer_option_reads_as_pyarrow_reads_it(tmp_path, options):
    n = 60
    path = tmp_path / "set.parquet"
    pq.write_table(_table(n, seed=len(str(options))), path, **options)
    expected = pq.read_table(path).to_pylist()
    prompts = aifc.load_dataset(dataset_name="jsonl", dataset_path=str(path), num_prompts=n,
                                disable_shuffle=True)
    assert [p["text"] for p in prompts] == [row["prompt"] for row in expected]
    assert [p["output_tokens"] for p in prompts] == [row["output_tokens"] for row in expected]


def test_chat_sets_as_pandas_writes_them(tmp_path):
    pandas = pytest.importorskip("pandas")
    path = tmp_path / "chats.parquet"
    frame = pandas.DataFrame({
        "conversation_id": ["a", "b", "c"],
        "conversation": [
            [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"}],
            [{"role": "system", "content": "s"}, {"role": "user", "content": "second"}],
            [{"role": "user", "content": "third"}],
        ],
    })
    frame.to_parquet(path)  # pandas' defaults, index column included
    prompts = aifc.load_dataset(dataset_name="jsonl", dataset_path=str(path), num_prompts=3,
                                disable_shuffle=True)
    assert [p["text"] for p in prompts] == ["first", "second", "third"]


def test_a_codec_aifc_does_not_read_is_named(tmp_path):
    path = tmp_path / "lz4.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"]}), path, compression="lz4")
    with pytest.raises(aifc.AifcError, match="compressed with LZ4_RAW") as raised:
        aifc.load_dataset(dataset_name="jsonl", dataset_path=str(path), num_prompts=2)
    assert raised.value.code == "parse_error"
