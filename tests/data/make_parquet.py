"""Writes the Parquet files that test_dataset.cpp and the fuzz corpus read, with pyarrow (a real
writer, not aifc's idea of the format). Run from this folder: python3 make_parquet.py. The files
are committed; their contents are spelled out in test_dataset.cpp."""
import pyarrow as pa
import pyarrow.parquet as pq

turn = pa.struct([("role", pa.string()), ("content", pa.string())])
chat = pa.table({
    "messages": pa.array([
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a prime."}],
        [{"role": "user", "content": "Zähle bis drei."}, {"role": "assistant", "content": "1 2 3"}],
        [{"role": "user", "content": "Name a prime."}],
    ], type=pa.list_(turn)),
    "source": ["a", None, "a"],
})
# pyarrow's defaults: Snappy, dictionary encoding, data page v1, three-level lists ("element").
pq.write_table(chat, "chat.parquet")

prompts = pa.table({
    "prompt": [f"prompt number {i} " + "x" * (i * 40) for i in range(7)],
    "output_tokens": pa.array([5, 6, None, 8, 9, 10, 11], type=pa.int64()),
    "flag": pa.array([True, False, None, True, True, False, True]),  # RLE-encoded in v2 pages
})
# No compression, no dictionary, data page v2, small pages and row groups: many pages, 3 groups.
pq.write_table(prompts, "prompts_v2.parquet", compression="none", use_dictionary=False,
               data_page_version="2.0", data_page_size=64, row_group_size=3)

sharegpt = pa.table({
    "id": ["c1", "c2"],
    "conversations": pa.array([
        [{"from": "human", "value": "What is the capital of France, please?"},
         {"from": "gpt", "value": "The capital of France is Paris, a city on the Seine."}],
        [{"from": "human", "value": "Say hello in three languages, one per line."},
         {"from": "gpt", "value": "Hello. Bonjour. Hola. Those are English, French and Spanish."}],
    ], type=pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
})
# The older two-level naming ("item") that pyarrow wrote before version 13.
pq.write_table(sharegpt, "sharegpt.parquet", use_compliant_nested_type=False)

trace = pa.table({
    "timestamp": pa.array([0, 250, 1000], type=pa.int64()),
    "input_length": pa.array([32, 48, 16], type=pa.int64()),
    "output_length": pa.array([4, 8, 2], type=pa.int64()),
    "hash_ids": pa.array([[1, 2], [1, 2, 3], []], type=pa.list_(pa.int64())),
})
pq.write_table(trace, "trace.parquet")

# The other codecs aifc reads (Polars writes ZSTD by default), and one it refuses by name.
pq.write_table(prompts.slice(0, 2), "prompts_gzip.parquet", compression="gzip")
pq.write_table(prompts.slice(0, 2), "prompts_zstd.parquet", compression="zstd")
pq.write_table(prompts.slice(0, 2), "prompts_brotli.parquet", compression="brotli")
