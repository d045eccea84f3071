/* gguf.c - the GGUF reader (see gguf.h). */
#include "gguf.h"
#include "quant.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_TENSORS 65536u
#define MAX_KV 65536u
#define MAX_NAME 65536u

typedef struct {
    FILE *f;
    const char *path;
    uint64_t pos, size;
    char *err;
    size_t errlen;
    bool failed;
} reader;

static bool fail(reader *r, const char *what) {
    if (!r->failed) {
        snprintf(r->err, r->errlen, "%s: %s (at byte %llu of %llu)", r->path, what,
                 (unsigned long long)r->pos, (unsigned long long)r->size);
        r->failed = true;
    }
    return false;
}

static bool rd(reader *r, void *out, uint64_t n) {
    if (r->failed) return false;
    if (n > r->size - r->pos) return fail(r, "the file ends inside its header (truncated?)");
    if (n && fread(out, 1, (size_t)n, r->f) != n) return fail(r, "read error");
    r->pos += n;
    return true;
}

static bool rd_u32(reader *r, uint32_t *v) { return rd(r, v, 4); }
static bool rd_u64(reader *r, uint64_t *v) { return rd(r, v, 8); }

static bool rd_str(reader *r, gguf_string *s) {
    uint64_t n;
    s->str = NULL;
    s->len = 0;
    if (!rd_u64(r, &n)) return false;
    if (n > r->size - r->pos) return fail(r, "a string is longer than the rest of the file (not GGUF, or corrupted)");
    s->str = malloc((size_t)n + 1);
    if (!s->str) return fail(r, "out of memory reading the metadata");
    if (!rd(r, s->str, n)) return false;
    s->str[n] = '\0';
    s->len = n;
    return true;
}

static uint64_t scalar_size(uint32_t type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static bool rd_scalar(reader *r, uint32_t type, gguf_kv *kv) {
    uint8_t b[8] = {0};
    if (!rd(r, b, scalar_size(type))) return false;
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_BOOL: kv->v.u = b[0]; break;
    case GGUF_TYPE_INT8: kv->v.i = (int8_t)b[0]; break;
    case GGUF_TYPE_UINT16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
    case GGUF_TYPE_INT16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
    case GGUF_TYPE_UINT32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
    case GGUF_TYPE_INT32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
    case GGUF_TYPE_FLOAT32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
    case GGUF_TYPE_UINT64: memcpy(&kv->v.u, b, 8); break;
    case GGUF_TYPE_INT64: memcpy(&kv->v.i, b, 8); break;
    case GGUF_TYPE_FLOAT64: memcpy(&kv->v.f, b, 8); break;
    default: return fail(r, "unknown metadata value type");
    }
    return true;
}

static bool rd_value(reader *r, gguf_kv *kv) {
    if (!rd_u32(r, &kv->type)) return false;
    if (kv->type == GGUF_TYPE_STRING) return rd_str(r, &kv->v.s);
    if (kv->type != GGUF_TYPE_ARRAY) {
        if (!scalar_size(kv->type)) return fail(r, "unknown metadata value type (not GGUF, or corrupted)");
        return rd_scalar(r, kv->type, kv);
    }
    if (!rd_u32(r, &kv->arr_type) || !rd_u64(r, &kv->arr_n)) return false;
    if (kv->arr_type == GGUF_TYPE_STRING) {
        /* each string takes at least its 8-byte length */
        if (kv->arr_n > (r->size - r->pos) / 8) return fail(r, "an array is longer than the rest of the file");
        gguf_string *items = calloc((size_t)kv->arr_n + 1, sizeof *items);
        if (!items) return fail(r, "out of memory reading the metadata");
        kv->arr = items;
        for (uint64_t i = 0; i < kv->arr_n; i++)
            if (!rd_str(r, &items[i])) return false;
        return true;
    }
    uint64_t size = scalar_size(kv->arr_type);
    if (!size) return fail(r, "unsupported array item type (nested arrays are not used by models)");
    if (kv->arr_n > (r->size - r->pos) / size) return fail(r, "an array is longer than the rest of the file");
    kv->arr = malloc((size_t)(kv->arr_n * size) + 1);
    if (!kv->arr) return fail(r, "out of memory reading the metadata");
    return rd(r, kv->arr, kv->arr_n * size);
}

static void describe_open_error(const char *path, int e, char *err, size_t errlen) {
    if (e == ENOENT) {
        snprintf(err, errlen,
                 "model file %s does not exist in the plug-in's sandbox: the app must grant the folder "
                 "that holds it, read-only, e.g. grant: {paths: {./models: /models}} and config "
                 "{model: /models/model.gguf}", path);
    } else if (
#ifdef ENOTCAPABLE
               e == ENOTCAPABLE ||
#endif
               e == EACCES || e == EPERM) {
        snprintf(err, errlen,
                 "model file %s is outside every folder granted to the plug-in (or not readable): grant "
                 "its folder, e.g. grant: {paths: {./models: /models}} and config {model: /models/model.gguf}",
                 path);
    } else {
        snprintf(err, errlen, "cannot open model file %s: %s", path, strerror(e));
    }
}

bool gguf_open(const char *path, gguf_file *g, char *err, size_t errlen) {
    memset(g, 0, sizeof *g);
    FILE *f = fopen(path, "rb");
    if (!f) {
        describe_open_error(path, errno, err, errlen);
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "model file %s is a folder, not a .gguf file", path);
        fclose(f);
        return false;
    }
    reader r = {f, path, 0, (uint64_t)st.st_size, err, errlen, false};
    g->file_size = r.size;

    char magic[4];
    if (r.size < 24 || fread(magic, 1, 4, f) != 4 || memcmp(magic, "GGUF", 4) != 0) {
        snprintf(err, errlen, "%s is not a GGUF file (it does not start with \"GGUF\"); llm-local reads "
                              "llama-architecture models in GGUF v2/v3", path);
        fclose(f);
        return false;
    }
    r.pos = 4;
    bool ok = rd_u32(&r, &g->version);
    if (ok && (g->version < 2 || g->version > 3)) {
        snprintf(err, errlen, "%s is GGUF version %u; llm-local reads versions 2 and 3", path, (unsigned)g->version);
        fclose(f);
        return false;
    }
    ok = ok && rd_u64(&r, &g->n_tensors) && rd_u64(&r, &g->n_kv);
    if (ok && (g->n_tensors > MAX_TENSORS || g->n_kv > MAX_KV)) ok = fail(&r, "implausible tensor or metadata count");
    if (ok) {
        g->kv = calloc((size_t)g->n_kv + 1, sizeof *g->kv);
        g->tensors = calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
        if (!g->kv || !g->tensors) ok = fail(&r, "out of memory");
    }
    for (uint64_t i = 0; ok && i < g->n_kv; i++) {
        gguf_string key;
        ok = rd_str(&r, &key);
        g->kv[i].key = key.str;
        ok = ok && rd_value(&r, &g->kv[i]);
    }
    g->alignment = 32;
    uint64_t align;
    if (ok && gguf_get_u64(g, "general.alignment", &align)) {
        if (align == 0 || (align & (align - 1)) || align > 65536) ok = fail(&r, "general.alignment is not a power of two");
        else g->alignment = align;
    }
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
        gguf_tensor *t = &g->tensors[i];
        gguf_string name;
        ok = rd_str(&r, &name);
        t->name = name.str;
        if (ok && name.len > MAX_NAME) ok = fail(&r, "a tensor name is implausibly long");
        ok = ok && rd_u32(&r, &t->n_dims);
        if (ok && (t->n_dims < 1 || t->n_dims > 4)) ok = fail(&r, "a tensor has more than 4 dimensions");
        uint64_t n = 1;
        for (uint32_t d = 0; ok && d < 4; d++) {
            if (d < t->n_dims) ok = rd_u64(&r, &t->ne[d]);
            else t->ne[d] = 1;
            if (ok && (t->ne[d] == 0 || t->ne[d] > (1ull << 40) || n > (1ull << 40) / t->ne[d]))
                ok = fail(&r, "a tensor has an implausible shape");
            n *= t->ne[d];
        }
        ok = ok && rd_u32(&r, &t->type) && rd_u64(&r, &t->offset);
        if (ok) {
            t->nbytes = ggml_nbytes(t->type, n);
            if (!t->nbytes) {
                snprintf(err, errlen, "%s: tensor %s has type %s, which llm-local cannot read", path, t->name,
                         ggml_type_name(t->type));
                r.failed = true;
                ok = false;
            }
        }
    }
    if (ok) {
        g->data_offset = (r.pos + g->alignment - 1) / g->alignment * g->alignment;
        for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
            gguf_tensor *t = &g->tensors[i];
            uint64_t end = t->offset + t->nbytes;
            if (end < t->offset || g->data_offset > r.size || end > r.size - g->data_offset) {
                snprintf(err, errlen, "%s: tensor %s lies beyond the end of the file (%llu bytes): the file is "
                                      "truncated", path, t->name, (unsigned long long)r.size);
                ok = false;
            } else if (end > g->blob_size) {
                g->blob_size = end;
            }
        }
    }
    fclose(f);
    if (!ok) gguf_free(g);
    return ok;
}

bool gguf_read_data(const char *path, gguf_file *g, char *err, size_t errlen) {
    if (g->blob) return true;
    FILE *f = fopen(path, "rb");
    if (!f) {
        describe_open_error(path, errno, err, errlen);
        return false;
    }
    g->blob = malloc((size_t)g->blob_size + 64);
    if (!g->blob) {
        snprintf(err, errlen, "%s: not enough memory for %llu MB of weights (raise memory_pages)", path,
                 (unsigned long long)(g->blob_size >> 20));
        fclose(f);
        return false;
    }
    bool ok = fseek(f, (long)g->data_offset, SEEK_SET) == 0;
    uint64_t done = 0;
    while (ok && done < g->blob_size) {
        uint64_t chunk = g->blob_size - done;
        if (chunk > (64u << 20)) chunk = 64u << 20;
        size_t got = fread(g->blob + done, 1, (size_t)chunk, f);
        if (got == 0) ok = false;
        done += got;
    }
    fclose(f);
    if (!ok) {
        snprintf(err, errlen, "%s: reading the tensor data failed after %llu of %llu bytes", path,
                 (unsigned long long)done, (unsigned long long)g->blob_size);
        free(g->blob);
        g->blob = NULL;
        return false;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) g->tensors[i].data = g->blob + g->tensors[i].offset;
    return true;
}

void gguf_free(gguf_file *g) {
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        free(kv->key);
        if (kv->type == GGUF_TYPE_STRING) free(kv->v.s.str);
        if (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING && kv->arr) {
            gguf_string *items = kv->arr;
            for (uint64_t j = 0; j < kv->arr_n; j++) free(items[j].str);
        }
        free(kv->arr);
    }
    for (uint64_t i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->kv);
    free(g->tensors);
    free(g->blob);
    memset(g, 0, sizeof *g);
}

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const gguf_tensor *gguf_tensor_find(const gguf_file *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].name && strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

bool gguf_get_u64(const gguf_file *g, const char *key, uint64_t *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return false;
    switch (kv->type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
    case GGUF_TYPE_BOOL:
        *out = kv->v.u;
        return true;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        if (kv->v.i < 0) return false;
        *out = (uint64_t)kv->v.i;
        return true;
    default: return false;
    }
}

bool gguf_get_f64(const gguf_file *g, const char *key, double *out) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv) return false;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) {
        *out = kv->v.f;
        return true;
    }
    uint64_t u;
    if (gguf_get_u64(g, key, &u)) {
        *out = (double)u;
        return true;
    }
    return false;
}

const char *gguf_get_str(const gguf_file *g, const char *key) {
    const gguf_kv *kv = gguf_find(g, key);
    return kv && kv->type == GGUF_TYPE_STRING ? kv->v.s.str : NULL;
}

const void *gguf_get_arr(const gguf_file *g, const char *key, uint32_t type, uint64_t *n) {
    const gguf_kv *kv = gguf_find(g, key);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->arr_type != type) return NULL;
    *n = kv->arr_n;
    return kv->arr;
}
