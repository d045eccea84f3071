/* gguf.h - a reader for GGUF files (versions 2 and 3), the model format of llama.cpp.
 *
 * Layout (little-endian): "GGUF", version u32, tensor count u64, metadata count u64; then the
 * metadata (key string, value type u32, value), then one info per tensor (name, n_dims u32,
 * ne[n_dims] u64, ggml type u32, offset u64 relative to the data section); the data section starts
 * at the next multiple of general.alignment (default 32). Strings are a u64 length and bytes.
 *
 * gguf_open reads the header and metadata with stdio (no mmap: a wasm32-wasi module cannot map a
 * file) and checks every length against the file size, so a truncated or foreign file is an error
 * message, never a crash; gguf_read_data then reads the whole tensor data section into one
 * malloc'd block. */
#ifndef LLM_GGUF_H
#define LLM_GGUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum {
    GGUF_TYPE_UINT8 = 0, GGUF_TYPE_INT8 = 1, GGUF_TYPE_UINT16 = 2, GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4, GGUF_TYPE_INT32 = 5, GGUF_TYPE_FLOAT32 = 6, GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8, GGUF_TYPE_ARRAY = 9, GGUF_TYPE_UINT64 = 10, GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12
};

typedef struct {
    uint64_t len;
    char *str; /* NUL-terminated copy (the bytes may contain NULs; len is authoritative) */
} gguf_string;

typedef struct {
    char *key;
    uint32_t type;
    union {
        uint64_t u;  /* unsigned integers and bool */
        int64_t i;   /* signed integers */
        double f;    /* floats */
        gguf_string s;
    } v;
    /* arrays */
    uint32_t arr_type;
    uint64_t arr_n;
    void *arr;       /* gguf_string[] for strings, else the raw little-endian items */
} gguf_kv;

typedef struct {
    char *name;
    uint32_t n_dims;
    uint64_t ne[4];  /* ne[0] is the row length (fastest dimension) */
    uint32_t type;   /* ggml type (quant.h) */
    uint64_t offset; /* from the start of the data section */
    uint64_t nbytes;
    uint8_t *data;   /* into gguf_file.blob once read */
} gguf_tensor;

typedef struct {
    uint32_t version;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    uint64_t alignment;
    uint64_t data_offset; /* absolute file offset of the data section */
    uint64_t file_size;
    uint8_t *blob;        /* the data section */
    uint64_t blob_size;
} gguf_file;

/* Reads the header, metadata and tensor infos of `path`. On failure returns false with a message
 * in err (which names the path). */
bool gguf_open(const char *path, gguf_file *g, char *err, size_t errlen);
/* Reads the tensor data section (once) and points every tensor's data into it. */
bool gguf_read_data(const char *path, gguf_file *g, char *err, size_t errlen);
void gguf_free(gguf_file *g);

const gguf_kv *gguf_find(const gguf_file *g, const char *key);
const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name);
/* Typed getters: false when the key is missing or of another kind. */
bool gguf_get_u64(const gguf_file *g, const char *key, uint64_t *out); /* any integer or bool >= 0 */
bool gguf_get_f64(const gguf_file *g, const char *key, double *out);  /* any number */
const char *gguf_get_str(const gguf_file *g, const char *key);
/* An array of `type` items, or NULL (count in *n). */
const void *gguf_get_arr(const gguf_file *g, const char *key, uint32_t type, uint64_t *n);

#endif
