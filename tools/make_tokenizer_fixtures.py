#!/usr/bin/env python3
"""Builds the tokenizer parity fixtures in tests/fixtures/tokenizer/.

Trains four SMALL byte-level BPE vocabularies with Hugging Face `tokenizers`, each configured
like one real model family (docs/TOKENIZER.md, formats.md section 4.3):
  gpt2   ByteLevel(use_regex=true)                        merges saved as "a b" strings
  smollm Digits(individual) + ByteLevel(use_regex=true)
  llama3 Split(L3 regex, Isolated) + ByteLevel(no regex), ignore_merges=true
  qwen2  NFC + Split(Q2 regex, Isolated) + ByteLevel(no regex)
and, when models/smollm2-135m-instruct/tokenizer.json exists (tools/fetch-model.sh), only the
expected ids of the real SmolLM2 tokenizer (smollm2_expected_ids.txt). It also
writes the committed test corpus corpus.txt (cases separated by a marker line) and, per
tokenizer, expected_ids.txt: one line of ids per case from encode(text, add_special_tokens=False).

Usage: pip install tokenizers && python3 tools/make_tokenizer_fixtures.py [OUT_DIR]
       python3 tools/make_tokenizer_fixtures.py --compare build/lrsa
         (random mixed-script text, 4 x 40,000 pieces, through HF and `lrsa tokenize`)
Re-running it reproduces the same files (the training text is deterministic).
"""
import json
import os
import random
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

MARKER = "__lrsa_tokenizer_case__"

L3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
      r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
Q2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
      r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                   "<|end_header_id|>", "<|eot_id|>"]


def corpus_cases():
    """The test cases: each stresses one part of the pipeline."""
    cases = [
        "Hello world! 123",
        "\n",
        " ",
        "  ",
        "   multiple   spaces  ",
        "\t",
        "\t\tindented\ttabs \t mixed\t",
        "line one\nline two\n\nline four\r\nwindows\r\n",
        "\n\n\n trailing newlines\n\n",
        "   \n   \n",
        "The capital of France is Paris.",
        "It's, I'm, you're, they've, we'll, he'd, don't",
        "IT'S I'M YOU'RE THEY'VE WE'LL HE'D DON'T",
        "It'S wE'Ll yOu'Re tHeY'vE 'S 'LL 'Re 'd",
        "'s at the start and end's",
        "x = a+b*(c-d)/e; y == z != w <= v >= u",
        "email me at someone@example.com or visit http://example.org/path?q=1&r=2",
        "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
        "def f(x):\n    return x ** 2  # square\n",
        "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
        "Price: $1,234.56 (or 1.234,56 EUR) - 99% off!!!",
        "Hello 👋 world 🌍! Family: 👨‍👩‍👧‍👦 flag: 🏳️‍🌈 thumbs: 👍🏽",
        "😀😃😄😁😆😅🤣😂",
        "你好，世界！我们今天学习分词。",
        "日本語のテキストとカタカナ、ひらがな。",
        "한국어 문장입니다.",
        "ខ្ញុំស្រលាញ់ភាសាខ្មែរ",
        "مرحبا بالعالم، هذا نص عربي.",
        "Привет, мир! Ёлка.",
        "Ελληνικά γράμματα: αβγδε",
        "café naïve résumé Ångström",
        # decomposed forms: NFC composes them for Qwen2 only
        "cafe\u0301 nai\u0308ve A\u030angstro\u0308m",
        "e\u0301\u0301 double combining, o\u0302\u0323 stacked",
        "\u212b angstrom sign, \u2126 ohm sign, \ufb01 ligature",
        "non\u00a0breaking\u2009thin\u3000ideographic\u2028line sep\u0085nel",
        "zero\u200bwidth\u200djoiner\ufeffbom",
        "Fullwidth digits １２３ and Arabic-Indic ٠١٢٣٤ and superscript ²³",
        "Roman numeral Ⅻ and fractions ½ ¾",
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n",
        "text<|endoftext|>more text <|endoftext|> spaced",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
        "unknown <|not_a_token|> stays text",
        "xyzzy and Xyzzy and  xyzzy",
        "A" * 40,
        "-" * 30 + "=" * 17,
        "!!!???...,,,;;;",
        "a\u0000b control \u0001\u0002\u001f chars \u007f del",
        "mixed123letters456and7890digits",
        "3.14159 2.71828 1e-10 0x1F 0b1010",
        "ᏣᎳᎩ Cherokee, ሰላም Amharic, नमस्ते Hindi",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟘𝟙𝟚 digits",
        # where PCRE2 and HF's engine disagree unless data/pretok_classes.c fixes it up
        "Mongolian\u180evowel sep \u180e x  \u180e\u180e'S",
        "new scripts: \U000105C0\U000105C1 letters, \U00010D40\U00010D41 digits,  \U00010D42 "
        "spaced, CJK-I \U0002EBF0 and \U00031350",
        "long s: it'\u017f and '\u212a kelvin, \u03a3\u0391\u03a3 \u03c3\u03c2",
    ]
    digits = "1234567890"
    for n in range(1, 13):
        cases.append(digits[:n] if n <= 10 else (digits * 2)[:n])
        cases.append(" " + (digits * 2)[3:3 + n] + " x")
    return cases


def training_text(cases):
    """Deterministic training text: English-ish sentences, code, numbers, and the cases."""
    rng = random.Random(1234)
    words = ("the of and to in is that it for was on are as with his they at be this from have "
             "or by one had not but what all were when we there can an your which their said if "
             "do will each about how up out them then she many some so these would other into "
             "has more her two like him see time could no make than first been its who now "
             "people my made over did down only way find use may water long little very after "
             "words called just where most know model token attention sparse lag relative cache "
             "compression training learning gradient layer head query key value France capital "
             "Paris world hello multiple spaces function return class import print").split()
    lines = []
    for _ in range(1500):
        n = rng.randint(4, 16)
        s = " ".join(rng.choice(words) for _ in range(n))
        if rng.random() < 0.3:
            s = s.capitalize()
        if rng.random() < 0.2:
            s += " " + str(rng.randint(0, 10 ** rng.randint(1, 8)))
        if rng.random() < 0.1:
            s = "    " + s.replace(" ", "_") + "()"
        s += rng.choice([".", "!", "?", ",", ":", ";", "", "'s", "n't"])
        lines.append(s)
    lines.extend(cases * 3)
    return lines


def train(name, lines, specials):
    tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
    byte_level_split = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if name == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif name == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif name == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(L3), behavior="isolated", invert=False), byte_level_split])
    elif name == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(Q2), behavior="isolated", invert=False), byte_level_split])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + len(specials) + 1100, min_frequency=2,
                                  special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def postprocess(name, path):
    """Rewrites details of the saved JSON that the C loader must handle."""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    merges = j["model"]["merges"]
    if name == "gpt2":
        # older tokenizers versions (and most published files) write "a b" strings
        j["model"]["merges"] = [m if isinstance(m, str) else m[0] + " " + m[1] for m in merges]
    else:
        j["model"]["merges"] = [m.split(" ", 1) if isinstance(m, str) else m for m in merges]
    if name == "llama3":
        # tokens that no merge produces: only ignore_merges emits them whole
        vocab = j["model"]["vocab"]
        nxt = max(max(vocab.values()), max(a["id"] for a in j["added_tokens"])) + 1
        for t in ["\u0120xyzzy", "Xyzzy"]:
            if t not in vocab:
                vocab[t] = nxt
                nxt += 1
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=None, separators=(",", ":"))


def random_mixed_text(seed, pieces=40000):
    """Random text of mixed pieces: all the scripts, spaces, combining marks, case-folding
    traps, controls, new-script letters and digits."""
    pool = [" ", "  ", "\n", "\t", "\r\n", "\u00a0", "\u3000", "\u2009", "\u0085", "\u2028",
            "\u180e", "\u200b", "a", "Z", "é", "e\u0301", "A\u030a", "ß", "İ", "ﬁ", "Å", "'s",
            "'S", "'ll", "'LL", "'re", "'Re", "'d", "'", "'ſ", "'\u212a", "0", "7", "123", "٣",
            "١٢", "１", "²", "½", "Ⅻ", "𝟘", "你", "好", "한", "ខ្ញុំ", "ع", "я", "α", "Σ", "ς", "👋",
            "👨‍👩‍👧", "🏳️‍🌈", "👍🏽", "!", "?", ".", ",", "-", "_", "(", "$", "…", "“", "—", "\u0000",
            "\u0001", "\u007f", "\ufeff", "\u0300", "\u0345", "ǅ", "ᾼ", "\u061c", "\u202e",
            "\U000105C0", "\U0002EBF0", "\U00010D40", "\U00031350", "\u1C89"]
    rng = random.Random(seed)
    return "".join(rng.choice(pool) if rng.random() < 0.7 else
                   "".join(rng.choice("abcdefghijklmnop ") for _ in range(rng.randint(1, 8)))
                   for _ in range(pieces))


def compare(binary, seeds=4):
    """Random mixed-script text through HF and through `lrsa tokenize`: ids must be identical."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    fix = os.path.join(here, "..", "tests", "fixtures", "tokenizer")
    models = [os.path.join(fix, n) for n in ["gpt2", "smollm", "llama3", "qwen2"]]
    real = os.path.join(here, "..", "models", "smollm2-135m-instruct")
    if os.path.exists(os.path.join(real, "tokenizer.json")):
        models.append(real)
    bad = 0
    for seed in range(seeds):
        txt = random_mixed_text(seed)
        for m in models:
            want = Tokenizer.from_file(os.path.join(m, "tokenizer.json")).encode(
                txt, add_special_tokens=False).ids
            got = subprocess.run([binary, "tokenize", "--model", m], input=txt.encode(),
                                 capture_output=True, check=True).stdout.split()
            same = [int(x) for x in got] == want
            bad += not same
            print(f"seed {seed} {os.path.basename(m)}: {len(want)} ids, "
                  f"{'identical' if same else 'DIFFERENT'}")
    return 1 if bad else 0


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--compare":
        sys.exit(compare(sys.argv[2]))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizer")
    os.makedirs(out, exist_ok=True)
    cases = corpus_cases()
    with open(os.path.join(out, "corpus.txt"), "w", encoding="utf-8", newline="") as f:
        f.write(("\n" + MARKER + "\n").join(cases))
    lines = training_text(cases)
    for name in ["gpt2", "smollm", "llama3", "qwen2"]:
        specials = LLAMA3_SPECIALS if name == "llama3" else CHATML_SPECIALS
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "tokenizer.json")
        train(name, lines, specials).save(path)
        postprocess(name, path)
        tok = Tokenizer.from_file(path)  # expected ids come from the file as committed
        with open(os.path.join(d, "expected_ids.txt"), "w", encoding="utf-8") as f:
            for c in cases:
                ids = tok.encode(c, add_special_tokens=False).ids
                f.write(" ".join(str(i) for i in ids) + "\n")
        print(f"{name}: vocab {tok.get_vocab_size()} -> {path}")
    # The real SmolLM2 vocabulary is too big to commit; when tools/fetch-model.sh has made it,
    # commit only its expected ids for the corpus (tests/tokenizer/test_tokenizer_smollm2.c).
    real = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models",
                        "smollm2-135m-instruct", "tokenizer.json")
    if os.path.exists(real):
        tok = Tokenizer.from_file(real)
        with open(os.path.join(out, "smollm2_expected_ids.txt"), "w", encoding="utf-8") as f:
            for c in cases:
                f.write(" ".join(str(i) for i in tok.encode(c, add_special_tokens=False).ids) + "\n")
        print(f"smollm2: expected ids from {real}")


if __name__ == "__main__":
    main()
