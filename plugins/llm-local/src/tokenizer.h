/* tokenizer.h - the tokenizer stored in a GGUF file's metadata.
 *
 * tokenizer.ggml.model = "gpt2": byte-level BPE as in GPT-2, SmolLM2, Qwen2: the text is split by
 *   the GPT-2 pre-tokenizer pattern ('s|'t|'re|'ve|'m|'ll|'d| ?L+| ?N+| ?[^\sLN]+|\s+(?!\S)|\s+),
 *   with every digit on its own first when tokenizer.ggml.pre is "smollm" (and the StarCoder
 *   family); each piece's bytes are mapped to printable characters (bytes_to_unicode) and merged by
 *   the ranks of tokenizer.ggml.merges, lowest rank first, leftmost first among equals.
 * tokenizer.ggml.model = "llama": SentencePiece BPE as in Llama 2 / TinyLlama: spaces become U+2581,
 *   pieces merge by tokenizer.ggml.scores, highest first.
 * Either way a symbol missing from the vocabulary falls back to byte tokens (<0xXX>, or the
 *   byte-level character), then to the unknown token, so no text is ever dropped silently.
 *
 * Letters and numbers outside ASCII are classified by a compact table of Unicode ranges (see
 * tokenizer.c): exact for Latin, Greek, Cyrillic, CJK and the common punctuation and symbol blocks;
 * approximate elsewhere, where a boundary may differ from Hugging Face's (the text still round-trips). */
#ifndef LLM_TOKENIZER_H
#define LLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "gguf.h"

enum { TOK_GPT2 = 1, TOK_SPM = 2 };
enum { PRE_GPT2 = 0, PRE_DIGITS = 1 };
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

typedef struct {
    int32_t *ids;
    int n, cap;
} tok_list;

bool tok_list_push(tok_list *l, int32_t id);
void tok_list_free(tok_list *l);

typedef struct tokenizer tokenizer;

struct tokenizer {
    int kind, pre;
    int n_vocab;
    const gguf_string *tokens; /* owned by the gguf_file */
    int32_t *types;
    float *scores;
    /* vocabulary hash: token text -> id */
    int32_t *vhash;
    uint32_t vmask;
    /* merges hash (gpt2): (left id, right id) -> rank and merged id */
    uint64_t *mkeys;
    int32_t *mrank, *mres;
    uint32_t mmask;
    int32_t byte_tok[256];  /* id of each byte's own token (byte-level char or <0xXX>), -1 if none */
    int32_t *specials;      /* control and user-defined tokens, longest first */
    int n_specials;
    int32_t bos, eos, eot, unk, im_start, im_end, endoftext;
    bool add_bos, add_space_prefix;
};

/* Builds the tokenizer from the metadata of g (which must outlive it). */
bool tok_init(tokenizer *t, const gguf_file *g, char *err, size_t errlen);
void tok_free(tokenizer *t);

/* Appends the tokens of text[0..len) to out. parse_special: control tokens written as text
 * ("<|im_start|>") become those tokens; user-defined tokens always do. false on out of memory. */
bool tok_encode(const tokenizer *t, const char *text, size_t len, bool parse_special, tok_list *out);
/* The bytes a token stands for, written to buf (up to cap bytes); returns the length. Control
 * tokens give "" unless `special`. */
size_t tok_piece(const tokenizer *t, int32_t id, bool special, char *buf, size_t cap);
int32_t tok_lookup(const tokenizer *t, const char *text, size_t len); /* -1 if absent */
/* True for tokens that end a turn: eos, eot, <|im_end|>, <|endoftext|>. */
bool tok_is_eog(const tokenizer *t, int32_t id);

#endif
