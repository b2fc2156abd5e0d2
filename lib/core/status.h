/* status.h - the three error tiers of evograd (see house-style.md).
 * 1. Bugs: EG_ASSERT prints file:line and aborts, also under NDEBUG.
 * 2. Out of memory: eg_xmalloc and friends (alloc.h) abort with the requested size.
 * 3. Bad input: functions return an enum eg_status and fill a caller-owned struct eg_error
 *    with one complete message ("path:line:col: key: what was expected, what was found"). */
#ifndef EG_STATUS_H
#define EG_STATUS_H

#include <stddef.h>

enum eg_status {
    EG_OK = 0,
    EG_ERR_IO,       // a file could not be opened, read or written
    EG_ERR_FORMAT,   // a file's content is not what its format requires
    EG_ERR_CONFIG,   // a config file or override is wrong
    EG_ERR_ARG,      // a value passed by the user is out of range
    EG_ERR_DIVERGED, // a loss or parameter became NaN or Inf, or the loss blew up
    EG_STOPPED,      // a stop request (a signal) interrupted a long operation: not an error
    EG_STATUS__COUNT
};

// One full, human-readable message. Caller-owned, usually on the stack.
struct eg_error {
    enum eg_status status;
    char msg[1024];
};

// Short name of a status ("ok", "io", "format", ...). Never NULL.
const char *eg_status_name(enum eg_status s);

// Formats a message into err (printf-style, truncated to fit) and returns status, so callers can
// write `return eg_errorf(err, EG_ERR_IO, "%s: %s", path, strerror(errno));`. err may be NULL.
enum eg_status eg_errorf(struct eg_error *err, enum eg_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Aborts with "file:line: EG_ASSERT(expr) failed" on stderr. Use for programming errors only.
_Noreturn void eg_assert_fail(const char *expr, const char *file, int line);

#define EG_ASSERT(expr) ((expr) ? (void)0 : eg_assert_fail(#expr, __FILE__, __LINE__))

#endif // EG_STATUS_H
