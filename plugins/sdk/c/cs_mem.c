/*
 * cs_mem.c - the allocator behind cs_malloc for freestanding wasm32 builds.
 *
 * Design (boundary tags + segregated free lists, in the spirit of dlmalloc, much smaller):
 *  - The heap is one contiguous run of chunks from __heap_base to the end of linear memory; it grows
 *    with memory.grow. A chunk starts with an 8-byte header {prev_size, size|INUSE}; chunks start at
 *    addresses = 8 (mod 16) and have sizes that are multiples of 16, so every payload is 16-aligned.
 *  - prev_size is always kept up to date, so free() can merge with both neighbours in O(1).
 *  - A 16-byte in-use prologue and an 8-byte in-use epilogue (size 0) bound the heap, so merging never
 *    needs a bounds check.
 *  - Free chunks live in doubly-linked lists binned by floor(log2(size)): malloc looks first-fit in
 *    its own bin, then takes the head of the next non-empty bin (every chunk there is big enough).
 * Why not a bump allocator: the instance (and its linear memory) survives across calls, and plug-ins
 * such as an LLM forward pass allocate and free large buffers repeatedly.
 */
#include "cs_mem.h"

size_t cs_strlen(const char *s) {
    size_t n = 0;
    if (!s) return 0;
    while (s[n]) n++;
    return n;
}

bool cs_streq(const char *a, const char *b) {
    if (!a || !b) return a == b;
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

char *cs_strndup(const char *s, size_t n) {
    char *d = (char *)cs_malloc(n + 1);
    if (!d) return NULL;
    if (n) cs_memcpy(d, s, n);
    d[n] = 0;
    return d;
}

#if defined(__wasi__)
/* ---- WASI: libc provides the heap. ---- */
#include <stdlib.h>
void *cs_malloc(size_t n) { return malloc(n ? n : 1); }
void *cs_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }
void *cs_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
void cs_free(void *p) { free(p); }
cs_mem_stats cs_mem_get_stats(void) { cs_mem_stats s = {0, 0, 0}; return s; }

#else
/* ---- Freestanding: our own heap. ---- */
#ifndef __wasm_bulk_memory__
#error "build freestanding Chainsocket plug-ins with -mbulk-memory (memcpy/memset lower to memory.copy/fill)"
#endif

#define PAGE 65536u
#define INUSE ((size_t)1)
#define HDR 8u        /* header bytes before the payload */
#define MIN_CHUNK 16u /* header + two free-list links */
#define NBINS 32

typedef struct chunk {
    size_t prev_size;   /* size of the chunk just below (any state) */
    size_t size;        /* this chunk's size including header, multiple of 16, | INUSE */
    struct chunk *next; /* free-list links; overlap the payload, so only valid while free */
    struct chunk *prev;
} chunk;

extern unsigned char __heap_base; /* provided by wasm-ld: first byte after data and stack */

static chunk *bins[NBINS];
static uintptr_t heap_lo, heap_end; /* heap_end = end of the memory we manage (epilogue + 8) */
static cs_mem_stats stats;

#define CSIZE(c) ((c)->size & ~INUSE)
#define NEXT_CHUNK(c) ((chunk *)((char *)(c) + CSIZE(c)))
#define PREV_CHUNK(c) ((chunk *)((char *)(c) - (c)->prev_size))
#define PAYLOAD(c) ((void *)((char *)(c) + HDR))
#define FROM_PAYLOAD(p) ((chunk *)((char *)(p) - HDR))

static unsigned bin_of(size_t size) {
    unsigned b = 31u - (unsigned)__builtin_clz((unsigned)size);
    return b < NBINS ? b : NBINS - 1;
}

static void bin_insert(chunk *c) {
    unsigned b = bin_of(CSIZE(c));
    c->prev = NULL;
    c->next = bins[b];
    if (bins[b]) bins[b]->prev = c;
    bins[b] = c;
}

static void bin_remove(chunk *c) {
    if (c->prev) c->prev->next = c->next;
    else bins[bin_of(CSIZE(c))] = c->next;
    if (c->next) c->next->prev = c->prev;
}

/* Put a free chunk (INUSE clear, prev_size valid) into the heap: merge with free neighbours, fix the
 * following chunk's prev_size, and bin it. */
static void release(chunk *c) {
    chunk *n = NEXT_CHUNK(c);
    if (!(n->size & INUSE)) {
        bin_remove(n);
        c->size += CSIZE(n);
    }
    if (!(PREV_CHUNK(c)->size & INUSE)) {
        chunk *p = PREV_CHUNK(c);
        bin_remove(p);
        p->size += CSIZE(c);
        c = p;
    }
    NEXT_CHUNK(c)->prev_size = CSIZE(c);
    bin_insert(c);
}

/* Cut an in-use chunk down to `want` bytes and release the tail if it can hold a chunk. */
static void trim(chunk *c, size_t want) {
    size_t have = CSIZE(c);
    if (have - want < MIN_CHUNK) return;
    chunk *tail = (chunk *)((char *)c + want);
    c->size = want | INUSE;
    tail->prev_size = want;
    tail->size = have - want;
    stats.used_bytes -= have - want;
    release(tail);
}

static bool heap_init(void) {
    uintptr_t p = (((uintptr_t)&__heap_base + 15u) & ~(uintptr_t)15u) + 8u; /* = 8 (mod 16) */
    uintptr_t end = (uintptr_t)__builtin_wasm_memory_size(0) * PAGE;
    if (p + MIN_CHUNK + MIN_CHUNK + HDR > end) {
        if (__builtin_wasm_memory_grow(0, 1) == (size_t)-1) return false;
        end += PAGE;
    }
    chunk *pro = (chunk *)p;
    pro->prev_size = 0;
    pro->size = MIN_CHUNK | INUSE;
    chunk *first = NEXT_CHUNK(pro);
    chunk *epi = (chunk *)(end - HDR);
    first->prev_size = MIN_CHUNK;
    if (epi != first) { /* (end - 8) - (p + 16) is a multiple of 16 */
        first->size = (size_t)((uintptr_t)epi - (uintptr_t)first);
        epi->prev_size = first->size;
        bin_insert(first);
    }
    epi->size = 0 | INUSE;
    heap_lo = p;
    heap_end = end;
    stats.heap_bytes = end - p;
    return true;
}

/* Grow linear memory so that a free chunk of at least `need` bytes ends the heap. */
static bool heap_grow(size_t need) {
    size_t pages = (need + MIN_CHUNK + MIN_CHUNK + PAGE - 1) / PAGE;
    if (pages >= 65536u - __builtin_wasm_memory_size(0)) return false; /* 4 GiB: end would wrap */
    size_t old_pages = __builtin_wasm_memory_grow(0, pages);
    if (old_pages == (size_t)-1) return false;
    uintptr_t old_end = (uintptr_t)old_pages * PAGE, new_end = old_end + (uintptr_t)pages * PAGE;
    chunk *epi = (chunk *)(heap_end - HDR);
    chunk *c = epi;
    if (old_end != heap_end) {
        /* Someone else grew memory since our last look: fence off their pages as an in-use chunk
         * that we never free, and start the new free chunk 8 bytes into the new pages. */
        chunk *fence = epi;
        fence->size = (size_t)((old_end + HDR) - (uintptr_t)fence) | INUSE;
        c = NEXT_CHUNK(fence);
        c->prev_size = CSIZE(fence);
    }
    chunk *new_epi = (chunk *)(new_end - HDR);
    c->size = (size_t)((uintptr_t)new_epi - (uintptr_t)c); /* free; prev_size already valid */
    new_epi->size = 0 | INUSE;
    stats.heap_bytes += new_end - heap_end;
    heap_end = new_end;
    release(c);
    return true;
}

static chunk *find_fit(size_t want) {
    unsigned b = bin_of(want);
    for (chunk *c = bins[b]; c; c = c->next)
        if (CSIZE(c) >= want) return c;
    for (b++; b < NBINS; b++)
        if (bins[b]) return bins[b];
    return NULL;
}

/* Chunk size for an n-byte request: header + n rounded up to 16, at least MIN_CHUNK; 0 if absurd. */
static size_t chunk_size(size_t n) {
    if (n > (size_t)0x7fff0000u) return 0;
    size_t s = (n + HDR + 15u) & ~(size_t)15u;
    return s < MIN_CHUNK ? MIN_CHUNK : s;
}

void *cs_malloc(size_t n) {
    size_t want = chunk_size(n);
    if (!want) return NULL;
    if (!heap_lo && !heap_init()) return NULL;
    chunk *c = find_fit(want);
    if (!c) {
        if (!heap_grow(want)) return NULL;
        c = find_fit(want);
        if (!c) return NULL;
    }
    bin_remove(c);
    c->size |= INUSE;
    stats.used_bytes += CSIZE(c);
    stats.used_blocks++;
    trim(c, want);
    return PAYLOAD(c);
}

/* Traps on a pointer that is not a live block: silent heap corruption is far harder to debug. */
static chunk *checked(void *p) {
    chunk *c = FROM_PAYLOAD(p);
    uintptr_t a = (uintptr_t)c;
    if (a < heap_lo + MIN_CHUNK || a >= heap_end - HDR || (a & 15u) != 8u || !(c->size & INUSE) ||
        CSIZE(c) < MIN_CHUNK || NEXT_CHUNK(c)->prev_size != CSIZE(c))
        __builtin_trap();
    return c;
}

void cs_free(void *p) {
    if (!p) return;
    chunk *c = checked(p);
    c->size &= ~INUSE;
    stats.used_bytes -= CSIZE(c);
    stats.used_blocks--;
    release(c);
}

void *cs_calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) return NULL;
    void *p = cs_malloc(n * size);
    if (p) cs_memset(p, 0, n * size);
    return p;
}

void *cs_realloc(void *p, size_t n) {
    if (!p) return cs_malloc(n);
    size_t want = chunk_size(n);
    if (!want) return NULL;
    chunk *c = checked(p);
    size_t have = CSIZE(c);
    if (want <= have) {
        trim(c, want);
        return p;
    }
    chunk *nx = NEXT_CHUNK(c);
    if (!(nx->size & INUSE) && have + CSIZE(nx) >= want) { /* absorb the free neighbour */
        bin_remove(nx);
        c->size += CSIZE(nx);
        NEXT_CHUNK(c)->prev_size = CSIZE(c);
        stats.used_bytes += CSIZE(nx);
        trim(c, want);
        return p;
    }
    void *q = cs_malloc(n);
    if (!q) return NULL;
    cs_memcpy(q, p, have - HDR);
    cs_free(p);
    return q;
}

cs_mem_stats cs_mem_get_stats(void) { return stats; }

/* ---- libc names, for compiler-emitted calls and ported code (see cs_mem.h). ---- */
#ifndef CS_NO_LIBC_NAMES
void *malloc(size_t n) { return cs_malloc(n); }
void *calloc(size_t n, size_t size) { return cs_calloc(n, size); }
void *realloc(void *p, size_t n) { return cs_realloc(p, n); }
void free(void *p) { cs_free(p); }
void *memcpy(void *d, const void *s, size_t n) { __builtin_memcpy(d, s, n); return d; }
void *memmove(void *d, const void *s, size_t n) { __builtin_memmove(d, s, n); return d; }
void *memset(void *d, int c, size_t n) { __builtin_memset(d, c, n); return d; }
__attribute__((no_builtin)) int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}
__attribute__((no_builtin)) size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
#endif
#endif
