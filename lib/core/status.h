/* status.h - the three error tiers of evograd (see house-style.md).
 * 1. Bugs: EG_ASSERT prints file:line and aborts, also under NDEBUG.
 * 2. Out of memory: eg_xmalloc and friends (alloc.h) abort with the requested size.
 * 3. Bad input: functions return an enum eg_status and fill a caller-owned struct eg_error
 *    with one complete message ("path:line:col: key: what was expected, what was found"). */
#ifndef EG_STATUS_H
#define EG_STATUS_H

#include <stddef.h>

// enum eg_status, struct eg_error and eg_status_name: part of the public API.
#include "evograd/status.h"

// Formats a message into err (printf-style, truncated to fit) and returns status, so callers can
// write `return eg_errorf(err, EG_ERR_IO, "%s: %s", path, strerror(errno));`. err may be NULL.
enum eg_status eg_errorf(struct eg_error *err, enum eg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Aborts with "file:line: EG_ASSERT(expr) failed" on stderr. Use for programming errors only.
_Noreturn void eg_assert_fail(const char *expr, const char *file, int line);

#define EG_ASSERT(expr) ((expr) ? (void)0 : eg_assert_fail(#expr, __FILE__, __LINE__))

#endif // EG_STATUS_H
