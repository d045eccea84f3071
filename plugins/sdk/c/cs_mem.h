/*
 * cs_mem.h - heap and byte helpers for Chainsocket C plug-ins.
 *
 * Why this exists: a freestanding wasm32 build (--target=wasm32-unknown-unknown -nostdlib) has no
 * libc, so there is no malloc and no memcpy. This header gives the SDK (and you) a small, real
 * allocator over memory.grow, plus the few mem and str functions the SDK needs.
 *
 *  - Freestanding (the default build): cs_mem.c implements the allocator and ALSO defines the standard
 *    names malloc/calloc/realloc/free and memcpy/memmove/memset/memcmp/strlen, because clang may emit
 *    calls to them on its own (struct copies, loops it recognises) and because ported code expects
 *    them. Build with -mbulk-memory: memcpy/memset then lower to memory.copy/memory.fill.
 *  - wasm32-wasi (wasi-libc linked in, __wasi__ defined): cs_malloc & co. are libc's malloc & co.
 *    and cs_mem.c defines nothing of its own.
 *
 * The linear memory outlives a single `call` (the instance is reused), so memory you do not free
 * stays in use across calls: free what you allocate, or keep it on purpose (e.g. model weights).
 */
#ifndef CS_MEM_H
#define CS_MEM_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocate n bytes, 16-byte aligned; malloc(0) returns a unique minimal block. NULL when n is
 * absurd or memory.grow fails. Note: under extism a memory.grow beyond the plug-in's
 * memory_pages limit does not fail softly - the host ends the call with the error "oom". */
void *cs_malloc(size_t n);
/* n*size zeroed bytes; NULL on overflow of n*size. */
void *cs_calloc(size_t n, size_t size);
/* Resize in place when possible (shrink, or absorb a free neighbour), else move. realloc(NULL, n)
 * is malloc(n); on failure the old block is left untouched and NULL is returned. */
void *cs_realloc(void *p, size_t n);
/* Free a block from cs_malloc/cs_calloc/cs_realloc; NULL is ignored. Freeing a block twice or a
 * pointer the allocator never returned traps (unreachable) instead of corrupting the heap. */
void cs_free(void *p);

/* Heap statistics, for leak checks in tests and for sizing big buffers (freestanding only; under
 * WASI all fields are 0). */
typedef struct {
    size_t heap_bytes;  /* bytes of linear memory managed by the allocator */
    size_t used_bytes;  /* bytes in allocated blocks (including 8-byte headers and rounding) */
    size_t used_blocks; /* number of live allocations */
} cs_mem_stats;
cs_mem_stats cs_mem_get_stats(void);

/* Copy n bytes of s into a new NUL-terminated block (n may include NULs). NULL on OOM. */
char *cs_strndup(const char *s, size_t n);
/* Length of a NUL-terminated string; NULL counts as "". */
size_t cs_strlen(const char *s);
/* true when the NUL-terminated strings are equal; NULL equals only NULL. */
bool cs_streq(const char *a, const char *b);

#define cs_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define cs_memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define cs_memset(d, c, n) __builtin_memset((d), (c), (n))
#define cs_memcmp(a, b, n) __builtin_memcmp((a), (b), (n))

#ifdef __cplusplus
}
#endif
#endif
