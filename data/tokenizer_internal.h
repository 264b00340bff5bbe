/* Private to the tokenizer files (data/tokenizer*.c, data/bpe.c, data/pretok.c, data/utf8*.c):
 * the tokenizer's tables and the helpers that fill and use them. */
#ifndef LRSA_DATA_TOKENIZER_INTERNAL_H
#define LRSA_DATA_TOKENIZER_INTERNAL_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>

#include "base/error.h"
#include "base/hash.h"
#include "data/ids.h"
#include "data/tokenizer.h"

/* ---- UTF-8 and the GPT-2 byte map (data/utf8_bytes.c) ---- */
/* Decodes one code point at s (n bytes left). Returns its byte length (1..4) and sets *cp;
 * an invalid or truncated sequence gives length 1 and *cp = -1. */
int lrsa_utf8_next(const unsigned char *s, size_t n, int32_t *cp);
/* Length of the longest prefix of s that could still become a valid character when more bytes
 * arrive (0 when s[0..n) is not such a prefix). Used by the streaming decoder. */
int lrsa_utf8_incomplete_tail(const unsigned char *s, size_t n);
/* Appends s to out, replacing each maximal invalid subpart by U+FFFD (as Rust's
 * String::from_utf8_lossy does). out must hold 3 * n bytes; returns bytes written. */
size_t lrsa_utf8_lossy(const unsigned char *s, size_t n, char *out);
int lrsa_utf8_encode(int32_t cp, char *out);
/* GPT-2's byte -> code point table and its inverse (-1 for code points that are no byte). */
int32_t lrsa_byte_to_cp(unsigned char b);
int lrsa_cp_to_byte(int32_t cp);

/* ---- Hash maps (data/bpe.c) ---- */
typedef struct lrsa_strmap {
    uint32_t cap, n; /* cap is a power of two */
    const char **keys;
    uint32_t *klen;
    int32_t *vals;
} lrsa_strmap;
void lrsa_strmap_init(lrsa_strmap *m, uint32_t expected);
void lrsa_strmap_free(lrsa_strmap *m);
/* Inserts or overwrites; the key is NOT copied (it must outlive the map). */
void lrsa_strmap_put(lrsa_strmap *m, const char *key, uint32_t klen, int32_t val);
int32_t lrsa_strmap_get(const lrsa_strmap *m, const char *key, uint32_t klen); /* -1 absent */

typedef struct lrsa_pairmap { /* (left id, right id) -> (rank, merged id) */
    uint32_t cap, n;
    uint64_t *keys;
    int32_t *rank, *merged;
} lrsa_pairmap;
void lrsa_pairmap_init(lrsa_pairmap *m, uint32_t expected);
void lrsa_pairmap_free(lrsa_pairmap *m);
/* Keeps the first (lowest) rank when a pair is listed twice. */
void lrsa_pairmap_put(lrsa_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t merged);
int lrsa_pairmap_get(const lrsa_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *merged);

/* ---- The pre-tokenizer pipeline ---- */
typedef enum lrsa_pretok_kind {
    LRSA_PRETOK_REGEX,       /* keep matches and the gaps between them (Isolated) */
    LRSA_PRETOK_DIGITS_EACH, /* every ASCII digit on its own */
    LRSA_PRETOK_DIGITS_RUNS, /* runs of ASCII digits */
    LRSA_PRETOK_METASPACE,   /* spaces -> the replacement, prepend it, split before it */
} lrsa_pretok_kind;

/* Metaspace prepend schemes, as Hugging Face names them. */
typedef enum lrsa_prepend_scheme {
    LRSA_PREPEND_ALWAYS, /* every piece of text that does not start with the replacement */
    LRSA_PREPEND_FIRST,  /* only the piece at the very start of the input */
    LRSA_PREPEND_NEVER,
} lrsa_prepend_scheme;

typedef struct lrsa_pretok_stage {
    lrsa_pretok_kind kind;
    char *pattern; /* REGEX: the pattern text (kept for the checksum); METASPACE: replacement */
    pcre2_code *re;
    lrsa_prepend_scheme prepend; /* METASPACE */
    int split;                   /* METASPACE: split before each replacement character */
} lrsa_pretok_stage;

/* ---- SentencePiece-style (character-level) BPE: normalizer steps, decoder steps ---- */
typedef enum lrsa_norm_kind {
    LRSA_NORM_PREPEND, /* content before non-empty text */
    LRSA_NORM_REPLACE, /* every (non-overlapping, leftmost) pattern -> content */
} lrsa_norm_kind;

typedef struct lrsa_norm_step {
    lrsa_norm_kind kind;
    char *pattern, *content;
} lrsa_norm_step;

typedef enum lrsa_dec_kind {
    LRSA_DEC_REPLACE,       /* per token: pattern -> content */
    LRSA_DEC_BYTE_FALLBACK, /* runs of <0xNN> tokens -> their bytes (one U+FFFD per byte if the
                               run is not valid UTF-8) */
    LRSA_DEC_FUSE,          /* all tokens -> one string */
    LRSA_DEC_STRIP,         /* per token: up to start leading / stop trailing content chars */
    LRSA_DEC_METASPACE,     /* per token: replacement -> space (dropped in the first token) */
} lrsa_dec_kind;

typedef struct lrsa_dec_step {
    lrsa_dec_kind kind;
    char *pattern, *content;     /* REPLACE; STRIP: content is the character; METASPACE: pattern */
    int start, stop;             /* STRIP */
    lrsa_prepend_scheme prepend; /* METASPACE */
} lrsa_dec_step;

#define LRSA_MAX_NORM_STEPS 8
#define LRSA_MAX_DEC_STEPS  8
#define LRSA_MAX_TEMPLATE   4

#define LRSA_MAX_PRETOK_STAGES 8

typedef struct lrsa_added_token {
    char *content;
    int len;
    int32_t id;
    int special, lstrip, rstrip;
    /* character-level tokenizers: matched after normalization, as its normalized form */
    int normalized;
    char *norm_content;
    int norm_len;
} lrsa_added_token;

/* Pieces already run through BPE: piece bytes -> ids. Guarded by a mutex because encode is
 * const and may run on several threads; bounded so a huge input cannot grow it forever. */
typedef struct lrsa_piece_cache {
    pthread_mutex_t mu;
    lrsa_strmap map; /* value = offset into ids */
    char *arena;
    size_t arena_n, arena_cap;
    int32_t *ids; /* at offset: count, then the ids */
    size_t ids_n, ids_cap;
} lrsa_piece_cache;

struct lrsa_tokenizer {
    int n_vocab;  /* max id + 1 */
    char **token; /* id -> token string as in the vocab (byte-mapped), or NULL */
    char **bytes; /* id -> decoded bytes */
    int32_t *bytes_len;
    uint8_t *special; /* id -> 1 for special added tokens */
    int max_token_bytes;
    lrsa_strmap vocab; /* token string -> id (model vocab and added tokens) */
    lrsa_pairmap merges;
    int n_merges;
    uint64_t merge_hash;  /* running hash of the merges in rank order, for the checksum */
    int32_t byte_id[256]; /* the single-byte symbols */
    char bytemap[256][2]; /* byte -> its GPT-2 code point in UTF-8 (1 or 2 bytes) */
    uint8_t bytemap_len[256];
    int ignore_merges;
    int32_t unk_id; /* stands for byte symbols missing from the vocab (SmolLM2 lacks 21), or -1 */
    int fuse_unk;   /* consecutive unknowns become one unk id */
    int nfc;
    int add_prefix_space;
    int n_stages;
    lrsa_pretok_stage stages[LRSA_MAX_PRETOK_STAGES];
    lrsa_added_token *added; /* sorted longest content first */
    int n_added;
    /* character-level (SentencePiece-style) BPE: the vocabulary holds text, not byte symbols;
     * pieces start as characters, and with byte_fallback a character outside the vocabulary
     * becomes its <0xNN> byte tokens (data/spm_encode.c, data/spm_decode.c) */
    int char_level;
    int byte_fallback;
    /* no token has "▁" right after another character, so no BPE merge can join text across
     * such a "▁": a piece may be cut before each one (a speed-up that changes no id) */
    int cut_at_metaspace;
    int n_norm;
    lrsa_norm_step norm[LRSA_MAX_NORM_STEPS];
    int has_decoder; /* 0: tokens are joined with spaces, as HF does without a decoder */
    int n_dec;
    lrsa_dec_step dec[LRSA_MAX_DEC_STEPS];
    /* the post-processor for one sequence (TemplateProcessing): ids before and after the text */
    int n_tmpl_pre, n_tmpl_post;
    int32_t tmpl_pre[LRSA_MAX_TEMPLATE], tmpl_post[LRSA_MAX_TEMPLATE];
    char *chat_template; /* from tokenizer_config.json, when present */
    char checksum[17];
    lrsa_piece_cache cache;
};

/* Allocates an empty tokenizer with n_vocab slots. */
lrsa_tokenizer *lrsa_tokenizer_alloc(int n_vocab);
/* Sets token `id`; returns -1 (with a message) for a duplicate string or id. */
int lrsa_tokenizer_set_token(lrsa_tokenizer *t, int32_t id, const char *s, lrsa_err *e);
/* Adds merge number `rank` ("a", "b"); errors name unknown parts. */
int lrsa_tokenizer_add_merge(lrsa_tokenizer *t, const char *a, const char *b, int rank,
                             lrsa_err *e);
/* Adds a regex stage (PCRE2 with JIT). literal: the pattern is a plain string. */
int lrsa_tokenizer_add_regex(lrsa_tokenizer *t, const char *pattern, int literal, lrsa_err *e);
/* Registers an added token (special or not) at id. */
int lrsa_tokenizer_add_added(lrsa_tokenizer *t, int32_t id, const char *content, int special,
                             int lstrip, int rstrip, lrsa_err *e);
/* Adds a Metaspace stage (replacement is one UTF-8 character). */
int lrsa_tokenizer_add_metaspace(lrsa_tokenizer *t, const char *replacement,
                                 lrsa_prepend_scheme prepend, int split, lrsa_err *e);
/* Computes byte ids, decoded bytes, sorts added tokens, and the checksum. */
int lrsa_tokenizer_finish(lrsa_tokenizer *t, const char *where, lrsa_err *e);

/* BPE of one pre-token (data/bpe.c): appends its ids. */
void lrsa_bpe_piece(const lrsa_tokenizer *t, const unsigned char *s, size_t n, lrsa_ids *out);
/* The same merge loop without the cache, returning the candidate comparisons its heap made (the
 * loop's cost: O(n log n) for a piece of n bytes, also for 100k equal bytes); for tests. */
int64_t lrsa_bpe_merge_ops(const lrsa_tokenizer *t, const unsigned char *s, size_t n,
                           lrsa_ids *out);
void lrsa_piece_cache_init(lrsa_piece_cache *c);
void lrsa_piece_cache_free(lrsa_piece_cache *c);

/* Normalizes and pre-tokenizes one span of plain text, BPE-encoding each piece
 * (data/pretok.c). */
int lrsa_pretok_encode(const lrsa_tokenizer *t, const char *text, size_t len, lrsa_ids *out,
                       lrsa_err *e);
/* Pre-tokenizes already normalized text and BPE-encodes each piece. at_origin: the text starts
 * at the very beginning of the input (Metaspace's "first" scheme prepends only there). */
void lrsa_pretok_run(const lrsa_tokenizer *t, const unsigned char *s, size_t n, int at_origin,
                     lrsa_ids *out);
/* NFC of s[0..n) (invalid bytes kept as they are), or NULL when it is pure ASCII. */
unsigned char *lrsa_nfc_text(const unsigned char *s, size_t n, size_t *out_n);

/* Added tokens (data/added_split.c): calls plain(ctx, start, end) for each stretch of text between
 * them and token(ctx, added) for each one found, leftmost-longest, honouring lstrip/rstrip. which:
 * 0 all added tokens, 1 those matched before normalization, 2 those matched after it. */
typedef int (*lrsa_plain_fn)(void *ctx, size_t start, size_t end, lrsa_err *e);
int lrsa_split_added(const lrsa_tokenizer *t, const char *text, size_t len, int which,
                     lrsa_plain_fn plain, void *ctx, lrsa_ids *out, lrsa_err *e);

/* ---- character-level BPE (data/bpe.c, data/spm_encode.c, data/spm_decode.c) ---- */
/* The starting symbols of a piece for BPE, as Hugging Face's BPE model builds them: each
 * character's id; with byte_fallback, the <0xNN> ids of a character outside the vocabulary;
 * else the unk id (fused when fuse_unk). Returns the count (at most n); syms holds n. */
size_t lrsa_spm_symbols(const lrsa_tokenizer *t, const unsigned char *s, size_t n, int32_t *syms);
/* BPE of one pre-tokenized piece of a character-level tokenizer: cut before each "▁" that
 * follows another character when the vocabulary allows it (cut_at_metaspace), else whole. */
void lrsa_spm_bpe(const lrsa_tokenizer *t, const unsigned char *s, size_t n, lrsa_ids *out);
/* Whether "▁" stands at s[i] right after a character other than "▁". */
int lrsa_spm_cut_before(const unsigned char *s, size_t i, size_t n);
/* encode / encode_with_special of a character-level tokenizer. at_origin: text starts the
 * input (see lrsa_pretok_run). */
int lrsa_spm_encode(const lrsa_tokenizer *t, const char *text, size_t len, int with_special,
                    int at_origin, lrsa_ids *out, lrsa_err *e);
/* Decoding through the decoder steps (exactly as Hugging Face's decoders). Caller frees; the
 * length goes to *out_len when not NULL (the text may hold NUL bytes from <0x00>). */
char *lrsa_spm_decode_n(const lrsa_tokenizer *t, const int32_t *ids, int64_t n, int skip_special,
                        size_t *out_len);
/* s with every (leftmost, non-overlapping) pattern replaced by content; an empty pattern
 * matches nothing (as in HF). Caller frees. */
char *lrsa_replace_all(const char *s, size_t n, const char *pattern, const char *content,
                       size_t *out_n);
/* Streaming decode of a character-level tokenizer: Hugging Face's DecodeStream algorithm. */
int lrsa_spm_stream_push(lrsa_stream_decoder *d, int32_t id, char *out, size_t cap);
int lrsa_spm_stream_flush(lrsa_stream_decoder *d, char *out, size_t cap);
/* Byte tables, per-token text and checks at the end of loading (data/spm_encode.c). */
int lrsa_spm_finish(lrsa_tokenizer *t, const char *where, lrsa_err *e);

/* The pattern with \s, \S, \p{L}, \p{N} replaced by the sets Hugging Face's engine uses
 * (data/pretok_classes.c). Caller frees. */
char *lrsa_pattern_hf_classes(const char *pattern);
/* 1 for the numbers (Nd/Nl/No) of Unicode 16 that utf8proc 2.8 does not know yet. */
int lrsa_hf_extra_number(int32_t cp);

/* The regex for a GGUF `tokenizer.ggml.pre` name. */
extern const char *const LRSA_RE_GPT2;
extern const char *const LRSA_RE_LLAMA3;
extern const char *const LRSA_RE_QWEN2;
#endif
