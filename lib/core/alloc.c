/* alloc.c - checked allocation wrappers (abort on out-of-memory). */
#include "alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Noreturn void oom(size_t size)
{
    fprintf(stderr, "evograd: out of memory (requested %zu bytes)\n", size);
    fflush(stderr);
    abort();
}

void *eg_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) oom(size);
    return p;
}

void *eg_xcalloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) oom(SIZE_MAX);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) oom(n * size);
    return p;
}

void *eg_xrealloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) oom(size);
    return q;
}

void *eg_xmalloc_array(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) oom(SIZE_MAX);
    return eg_xmalloc(n * size);
}

float *eg_xmalloc_floats(size_t n)
{
    if (n > (SIZE_MAX - 64) / sizeof(float)) oom(SIZE_MAX);
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64; // aligned_alloc wants a multiple
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p == NULL) oom(bytes);
    return p;
}

float *eg_xcalloc_floats(size_t n)
{
    float *p = eg_xmalloc_floats(n);
    memset(p, 0, n * sizeof(float));
    return p;
}

float *eg_grow_floats(float **buf, size_t *cap, size_t need)
{
    if (need > *cap) {
        free(*buf);
        *buf = eg_xmalloc_floats(need);
        *cap = need;
    }
    return *buf;
}

char *eg_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = eg_xmalloc(n);
    memcpy(p, s, n);
    return p;
}
