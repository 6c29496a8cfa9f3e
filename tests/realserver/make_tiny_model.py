#!/usr/bin/env python3
"""Writes a tiny LLaMA-shaped GGUF model with random weights and a small SentencePiece-style
vocabulary, so that tests can run a real llama.cpp server without downloading a model.

The output is word salad; the protocol, the tokenizer, the scheduling and the streaming are the
server's own. Words of the prompt split into one or more tokens, as with a real tokenizer.

usage: make_tiny_model.py OUT.gguf [--seed N]
"""
import argparse
import string

import gguf
import numpy as np

EMBED, HEADS, LAYERS, FF, CONTEXT = 64, 4, 2, 128, 4096
SPACE = "\u2581"  # SentencePiece's word-start mark
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def vocabulary():
    """(pieces, scores, types): specials, the 256 byte pieces, letters, word starts, and a few
    common words and pairs, so that short words are one token and longer ones several."""
    t = gguf.TokenType
    pieces = [("<unk>", 0.0, t.UNKNOWN), ("<s>", 0.0, t.CONTROL), ("</s>", 0.0, t.CONTROL)]
    pieces += [(f"<0x{b:02X}>", 0.0, t.BYTE) for b in range(256)]
    normal = [SPACE] + list(string.ascii_lowercase + string.digits + ".,!?'-")
    normal += [SPACE + c for c in string.ascii_lowercase]
    # Whole words with every prefix on the way (SentencePiece only merges into known pieces).
    for word in ("the", "of", "and", "to", "in", "is", "you", "that", "it", "he", "was", "for",
                 "on", "are", "as", "with", "at", "be", "this", "have", "from", "or", "one", "by",
                 "word", "but", "not", "what", "all", "were", "we", "when", "your", "can"):
        normal += [SPACE + word[:n] for n in range(1, len(word) + 1)]
    normal += ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te",
               "ing", "ion", "ed", "ly", "ou", "ea"]
    # Longer pieces score higher, so the tokenizer prefers them (as SentencePiece merges would).
    pieces += [(p, -10.0 + len(p), t.NORMAL) for p in dict.fromkeys(normal)]
    return pieces


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    vocab = vocabulary()

    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name("aifc-tiny-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(EMBED)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(EMBED // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in vocab])
    w.add_token_scores([s for _, s, _ in vocab])
    w.add_token_types([int(k) for _, _, k in vocab])
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(CHATML)

    def tensor(name, *shape):
        w.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    def ones(name, n):
        w.add_tensor(name, np.ones(n, dtype=np.float32))

    n_vocab = len(vocab)
    tensor("token_embd.weight", n_vocab, EMBED)
    ones("output_norm.weight", EMBED)
    tensor("output.weight", n_vocab, EMBED)
    for i in range(LAYERS):
        ones(f"blk.{i}.attn_norm.weight", EMBED)
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", EMBED, EMBED)
        ones(f"blk.{i}.ffn_norm.weight", EMBED)
        tensor(f"blk.{i}.ffn_gate.weight", FF, EMBED)
        tensor(f"blk.{i}.ffn_up.weight", FF, EMBED)
        tensor(f"blk.{i}.ffn_down.weight", EMBED, FF)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
