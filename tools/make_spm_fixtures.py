#!/usr/bin/env python3
"""Builds the SentencePiece-style tokenizer fixtures in tests/fixtures/tokenizer/spm/.

A SMALL BPE vocabulary laid out like Llama 2's (<unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>,
then pieces that start with "▁"), trained with Hugging Face `tokenizers` on the same text as
tools/make_tokenizer_fixtures.py with a limited alphabet, so that CJK, emoji and rare accents go
through byte fallback. One tokenizer.json (the Llama 2 pipeline) is committed; the other
pipelines differ only in normalizer / pre_tokenizer / decoder and are stored in variants.json as
HF serialised them. For each variant it writes, from HF:
  expected_<variant>.txt   ids per corpus case, encode(text, add_special_tokens=False)
  decode_<variant>.json    {"cases": decode(ids) per case (null: the case text itself),
                           "stream": DecodeStream chunks per case as [text, [byte length of
                           each step's chunk, -1 for none]] (text null: the decoded text),
                           "random": [[ids, decode(ids), decode(ids, skip_special), stream
                           as above or null where DecodeStream fails], ...]}
and for the Llama 2 pipeline chat.json (the Llama 2, Mistral and SmolLM2 (ChatML) chat templates
rendered by transformers and encoded by HF); it checks that add_special_tokens=True only puts
<s> first.
It also writes a GGUF vocabulary (tokenizer.ggml.model = llama, no tensors) of a SentencePiece
BPE model trained with the `sentencepiece` library, with the ids `sentencepiece` gives for each
corpus case (gguf_llama_vocab.gguf, gguf_expected_ids.txt); the script reports how the
transformers GGUF conversion compares (it uses Metaspace "first", so text that starts with a
space differs).

Variants: llama2            Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer (Llama 2, Mistral)
          metaspace_first   Metaspace(first, split=false) (newer Llama/Mistral conversions)
          metaspace_always  Metaspace(always, split=true), Metaspace decoder
                            (tokenizers' SentencePieceBPETokenizer)
          metaspace_never   Metaspace(never, split=false), no Strip in the decoder

Usage: pip install tokenizers transformers sentencepiece gguf && python3 tools/make_spm_fixtures.py
       python3 tools/make_spm_fixtures.py --compare build/lrsa
         (random mixed-script text, 4 x 40,000 pieces, through HF / sentencepiece and lrsa)
Re-running it reproduces the same files.
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixtures import (MARKER, corpus_cases, random_mixed_text,  # noqa: E402
                                     training_text)

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers  # noqa: E402
from tokenizers import processors, trainers  # noqa: E402

SPECIALS = ["<unk>", "<s>", "</s>"]
BYTES = ["<0x%02X>" % b for b in range(256)]
N_MERGES = 700
ALPHABET = 110

LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}")

MISTRAL_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}"
    "\n    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}"
    "\n{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must "
    "alternate user/assistant/user/assistant/...') }}\n    {%- endif %}\n"
    "    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}"
    "\n            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}"
    "\n        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}"
    "\n        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}"
    "\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}"
    "\n        {{- raise_exception('Only user and assistant roles are supported, with the "
    "exception of an initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n")

# SmolLM2's template (ChatML with a default system turn), here on a SentencePiece-style
# tokenizer, as fine-tunes such as OpenHermes-Mistral pair them
CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}")

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"},
     {"role": "assistant", "content": "The capital of France is Paris."}],
    [{"role": "system", "content": "You answer briefly."},
     {"role": "user", "content": "  Hello there!  "},
     {"role": "assistant", "content": " Hi! 👋 How can I help? "},
     {"role": "user", "content": "Translate: 你好，世界"},
     {"role": "assistant", "content": "Hello, world.\n\nDone."}],
    [{"role": "user", "content": "Quote [INST] x [/INST] as text\u3000"},
     {"role": "assistant", "content": "\tIt stays text.\u00a0"}],
]


def spm_cases():
    """The byte-level corpus plus cases that stress the SentencePiece-style pipeline."""
    return corpus_cases() + [
        " leading space",
        "  two leading spaces",
        "trailing space ",
        "   ",
        "<s>hello</s>",
        "<s> hello </s> world",
        "hello<s>world</s>",
        "▁literal ▁ metaspace▁▁chars",
        "<0x41> is not a byte here, <0xZZ> neither",
        "<custom> and x<custom>y and  <custom>",
        "a <sep> b<sep>c   <sep>",
        "tabs\tand\nnewlines\r\n\n  mixed \t ",
        "Ünïcödé wörds: naïveté, façade, jalapeño, Straße",
        "中文没有空格也能分词吗？当然可以。",
        "emoji runs 🎉🎉🎉 and 🇫🇷🇩🇪 flags",
        "zzyzx qwxv unknownword xylophonic",
    ]


def train_base(lines):
    """A Llama-2-like vocabulary: specials, byte tokens, then pieces (ids in that order)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    trainer = trainers.BpeTrainer(vocab_size=ALPHABET + N_MERGES, limit_alphabet=ALPHABET,
                                  special_tokens=[], show_progress=False)
    tok.train_from_iterator(lines, trainer)
    data = json.loads(tok.to_str())
    trained = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    vocab = {}
    for t in SPECIALS + BYTES:
        vocab[t] = len(vocab)
    for t, _ in trained:
        if t not in vocab:
            vocab[t] = len(vocab)
    merges = data["model"]["merges"]
    return vocab, merges


def pipeline(variant):
    """(normalizer, pre_tokenizer, decoder) of a variant."""
    strip = [decoders.Strip(content=" ", left=1, right=0)]
    llama_dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if variant == "llama2":
        return (normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
                None, decoders.Sequence(llama_dec + strip))
    if variant == "metaspace_first":
        return (None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                               split=False),
                decoders.Sequence(llama_dec + strip))
    if variant == "metaspace_always":
        return (None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                               split=True),
                decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True))
    if variant == "metaspace_never":
        return (None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never",
                                               split=False),
                decoders.Sequence(llama_dec))
    raise ValueError(variant)


VARIANTS = ["llama2", "metaspace_first", "metaspace_always", "metaspace_never"]


def build(vocab, merges, variant):
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m) for m in merges], unk_token="<unk>",
                               byte_fallback=True, fuse_unk=True))
    norm, pre, dec = pipeline(variant)
    if norm is not None:
        tok.normalizer = norm
    if pre is not None:
        tok.pre_tokenizer = pre
    tok.decoder = dec
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True)
                            for t in SPECIALS + ["<|im_start|>", "<|im_end|>"]])
    # a normalized added token (matched as its normalized form) and an lstrip special one
    tok.add_tokens([AddedToken("<custom>", normalized=True, special=False)])
    tok.add_special_tokens([AddedToken("<sep>", normalized=False, special=True, lstrip=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    return tok


def write_corpus(out, cases):
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(("\n" + MARKER + "\n").join(cases))


def write_ids(path, rows):
    with open(path, "w") as f:
        for ids in rows:
            f.write(" ".join(map(str, ids)) + "\n")


def stream_chunks(tok, ids, decoded):
    """HF DecodeStream's chunks, compactly: their text (null when it is `decoded`) and the
    UTF-8 length of each step's chunk (-1 when a step gives none)."""
    from tokenizers.decoders import DecodeStream
    ds = DecodeStream(skip_special_tokens=False)
    chunks = [ds.step(tok, i) for i in ids]
    text = "".join(c for c in chunks if c is not None)
    lens = [-1 if c is None else len(c.encode()) for c in chunks]
    return [None if text == decoded else text, lens]


def random_sequences(vocab, n_vocab, seed):
    """Id sequences that stress the decoders: byte runs valid and invalid, specials, spaces."""
    rng = random.Random(seed)
    byte_ids = [vocab[b] for b in BYTES]
    utf8 = [vocab["<0x%02X>" % b] for b in "é中🎉".encode()]
    seqs = []
    for _ in range(24):
        seq = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.25:
                seq.append(rng.choice(byte_ids))
            elif r < 0.4:
                seq.extend(utf8[rng.randint(0, 3):rng.randint(4, len(utf8))])
            elif r < 0.5:
                seq.append(rng.randint(0, 2))
            else:
                seq.append(rng.randint(0, n_vocab - 1))
        seqs.append(seq)
    return seqs


def chat_fixture(tok_path, tok):
    from transformers import PreTrainedTokenizerFast
    hf = PreTrainedTokenizerFast(tokenizer_file=tok_path, bos_token="<s>", eos_token="</s>",
                                 unk_token="<unk>")
    out = []
    for name, tpl in (("llama2", LLAMA2_TEMPLATE), ("mistral", MISTRAL_TEMPLATE),
                      ("chatml", CHATML_TEMPLATE)):
        for msgs in CHATS:
            text = hf.apply_chat_template(msgs, chat_template=tpl, tokenize=False)
            ids = tok.encode(text, add_special_tokens=False).ids
            prompt = hf.apply_chat_template(msgs[:-1], chat_template=tpl, tokenize=False,
                                            add_generation_prompt=True)
            out.append({"format": name, "messages": msgs, "text": text, "ids": ids,
                        "prompt_ids": tok.encode(prompt, add_special_tokens=False).ids})
    return out


def train_spm(lines):
    """A small sentencepiece BPE model with Llama 2's settings: (processor, tokens, scores,
    GGUF token types)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe", vocab_size=600,
        byte_fallback=True, split_digits=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        character_coverage=0.98, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1,
        minloglevel=2, max_sentence_length=100000)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    n = sp.get_piece_size()
    tokens = [sp.id_to_piece(i) for i in range(n)]
    scores = [sp.get_score(i) for i in range(n)]
    types = []
    for i in range(n):
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                     else 5 if sp.is_unused(i) else 1)
    return sp, tokens, scores, types


def write_vocab(w, tokens, scores, types):
    import numpy as np
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([float(np.float32(s)) for s in scores])
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(LLAMA2_TEMPLATE)


def gguf_fixture(out, lines, cases):
    """The sentencepiece model's vocabulary written as a vocab-only GGUF."""
    import gguf

    sp, tokens, scores, types = train_spm(lines)
    path = os.path.join(out, "gguf_llama_vocab.gguf")
    w = gguf.GGUFWriter(path, "llama")
    write_vocab(w, tokens, scores, types)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    expected = [sp.encode(c) for c in cases]
    write_ids(os.path.join(out, "gguf_expected_ids.txt"), expected)
    try:  # transformers' own GGUF reader needs torch; its tokenizer builder does not
        from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
        tdict = {"tokenizer_type": "llama", "tokens": tokens, "scores": scores,
                 "token_type": types, "bos_token_id": 1, "eos_token_id": 2, "unk_token_id": 0}
        hf, _ = convert_gguf_tokenizer("llama", tdict)
        same = sum(hf.encode(c, add_special_tokens=False).ids == e
                   for c, e in zip(cases, expected))
        print(f"transformers GGUF conversion agrees with sentencepiece on {same}/{len(cases)} "
              f"cases (it uses Metaspace 'first': text that starts with a space differs)")
    except ImportError as exc:  # transformers is optional here
        print("transformers GGUF conversion not checked:", exc)


def tiny_llama_gguf(path, tokens, scores, types):
    """A tiny random llama model (F32, one layer) with the sentencepiece vocabulary, for
    `lrsa convert` end to end."""
    import gguf
    import numpy as np

    rng = np.random.default_rng(0)
    v, c, inter, heads = len(tokens), 64, 96, 4
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(512)
    w.add_embedding_length(c)
    w.add_block_count(1)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(c // heads)
    write_vocab(w, tokens, scores, types)
    shapes = {"token_embd.weight": (v, c), "output_norm.weight": (c,), "output.weight": (v, c),
              "blk.0.attn_norm.weight": (c,), "blk.0.ffn_norm.weight": (c,),
              "blk.0.attn_q.weight": (c, c), "blk.0.attn_k.weight": (c, c),
              "blk.0.attn_v.weight": (c, c), "blk.0.attn_output.weight": (c, c),
              "blk.0.ffn_gate.weight": (inter, c), "blk.0.ffn_up.weight": (inter, c),
              "blk.0.ffn_down.weight": (c, inter)}
    for name, shape in shapes.items():
        w.add_tensor(name, rng.standard_normal(shape).astype(np.float32) * 0.02)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def compare(binary, seeds=4):
    """Random mixed-script text (4 x 40,000 pieces): `lrsa tokenize` against HF for the four
    pipelines (ids, and decode of HF's ids), and `lrsa convert` of a tiny llama GGUF with the
    sentencepiece vocabulary against `sentencepiece` itself."""
    import subprocess
    import tempfile

    here = os.path.dirname(os.path.abspath(__file__))
    fix = os.path.join(here, "..", "tests", "fixtures", "tokenizer", "spm")
    with open(os.path.join(fix, "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)
    with open(os.path.join(fix, "variants.json"), encoding="utf-8") as f:
        variants = json.load(f)
    tmp = tempfile.mkdtemp(prefix="lrsa_spm_compare_")
    dirs = {}
    for v, parts in variants.items():
        dirs[v] = os.path.join(tmp, v)
        os.makedirs(dirs[v])
        with open(os.path.join(dirs[v], "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(dict(base, **parts), f, ensure_ascii=False)
    sp, tokens, scores, types = train_spm(training_text(corpus_cases()))
    gg = os.path.join(tmp, "tiny.gguf")
    tiny_llama_gguf(gg, tokens, scores, types)
    conv = os.path.join(tmp, "converted")
    subprocess.run([binary, "convert", gg, conv], check=True, capture_output=True)

    def lrsa(model, data, *flags):
        return subprocess.run([binary, "tokenize", "--model", model, *flags], input=data,
                              capture_output=True, check=True).stdout

    bad = 0
    for seed in range(seeds):
        txt = random_mixed_text(seed)
        for v, d in dirs.items():
            tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
            want = tok.encode(txt, add_special_tokens=False).ids
            got = [int(x) for x in lrsa(d, txt.encode()).split()]
            text = lrsa(d, " ".join(map(str, want)).encode(), "--decode", "--special")
            same = got == want and text == tok.decode(want, skip_special_tokens=False).encode()
            bad += not same
            print(f"seed {seed} {v}: {len(want)} ids, {'identical' if same else 'DIFFERENT'}")
        want = sp.encode(txt.replace("\0", " "))  # sentencepiece stops at a NUL
        got = [int(x) for x in lrsa(conv, txt.replace("\0", " ").encode()).split()]
        bad += got != want
        print(f"seed {seed} lrsa convert (GGUF) vs sentencepiece: {len(want)} ids, "
              f"{'identical' if got == want else 'DIFFERENT'}")
    return 1 if bad else 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2]))
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "..", "tests", "fixtures", "tokenizer", "spm")
    os.makedirs(out, exist_ok=True)
    cases = spm_cases()
    lines = training_text(corpus_cases())
    vocab, merges = train_base(lines)
    write_corpus(out, cases)
    base_path = os.path.join(out, "tokenizer.json")
    with open(base_path, "w", encoding="utf-8") as f:
        f.write(build(vocab, merges, "llama2").to_str())
    with open(base_path, encoding="utf-8") as f:
        base = json.load(f)
    variants = {}
    for v in VARIANTS:
        # each variant is the committed file with the variant's three parts put in, exactly what
        # tests/tokenizer/test_tokenizer_spm.c does
        parts = json.loads(build(vocab, merges, v).to_str())
        variants[v] = {k: parts[k] for k in ("normalizer", "pre_tokenizer", "decoder")}
        tok = Tokenizer.from_str(json.dumps(dict(base, **variants[v])))
        rows = [tok.encode(c, add_special_tokens=False).ids for c in cases]
        write_ids(os.path.join(out, f"expected_{v}.txt"), rows)
        if v == "llama2":  # the C test expects <s> + ids from the post-processor
            assert all(tok.encode(c).ids == [vocab["<s>"]] + r for c, r in zip(cases, rows))
            with open(os.path.join(out, "chat.json"), "w", encoding="utf-8") as f:
                f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False,
                                                       separators=(",", ":"))
                                            for c in chat_fixture(base_path, tok)) + "\n]\n")
        decoded = [tok.decode(r, skip_special_tokens=False) for r in rows]
        dec = {"cases": [None if d == c else d for d, c in zip(decoded, cases)],
               "stream": [stream_chunks(tok, r, d) for r, d in zip(rows, decoded)],
               "random": []}
        for seq in random_sequences(vocab, tok.get_vocab_size(), 7):
            d = tok.decode(seq, skip_special_tokens=False)
            try:
                stream = stream_chunks(tok, seq, d)
            except Exception:  # DecodeStream gives up when a later byte spoils earlier text
                stream = None
            dec["random"].append([seq, d, tok.decode(seq, skip_special_tokens=True), stream])
        with open(os.path.join(out, f"decode_{v}.json"), "w", encoding="utf-8") as f:
            json.dump(dec, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out, "variants.json"), "w", encoding="utf-8") as f:
        json.dump(variants, f, ensure_ascii=False, indent=1)
    gguf_fixture(out, lines, cases)
    print(f"wrote {out}: {len(vocab)} tokens, {len(merges)} merges, {len(cases)} cases")


if __name__ == "__main__":
    main()
