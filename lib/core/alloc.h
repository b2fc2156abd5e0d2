/* alloc.h - checked allocation: on failure these print the requested size and abort(),
 * so callers never test for NULL. Memory is released with plain free(). */
#ifndef EG_ALLOC_H
#define EG_ALLOC_H

#include <stddef.h>

// malloc(size) (at least 1 byte); caller frees with free().
void *eg_xmalloc(size_t size);
// calloc(n, size) with overflow check; zero-filled; caller frees with free().
void *eg_xcalloc(size_t n, size_t size);
// realloc(p, size) (at least 1 byte); on failure aborts and p is not freed.
void *eg_xrealloc(void *p, size_t size);
// malloc(n * size) with an overflow check; uninitialised.
void *eg_xmalloc_array(size_t n, size_t size);
// A 64-byte aligned block of n floats, uninitialised (zeroed with eg_xcalloc_floats); free().
float *eg_xmalloc_floats(size_t n);
float *eg_xcalloc_floats(size_t n);
// Work space that grows: when *cap < need, frees *buf and makes it a fresh block of need floats
// (eg_xmalloc_floats; the contents are not kept) and sets *cap = need; else does nothing.
// Returns *buf. The caller frees *buf.
float *eg_grow_floats(float **buf, size_t *cap, size_t need);
// strdup(s); caller frees.
char *eg_xstrdup(const char *s);

#endif // EG_ALLOC_H
