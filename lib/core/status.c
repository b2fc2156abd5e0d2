/* status.c - status names, error formatting and the assertion handler. */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *eg_status_name(enum eg_status s)
{
    static const char *const names[EG_STATUS__COUNT] = {
        [EG_OK] = "ok",
        [EG_ERR_IO] = "io",
        [EG_ERR_FORMAT] = "format",
        [EG_ERR_CONFIG] = "config",
        [EG_ERR_ARG] = "argument",
        [EG_ERR_DIVERGED] = "diverged",
        [EG_STOPPED] = "stopped",
    };
    return (s >= 0 && s < EG_STATUS__COUNT) ? names[s] : "unknown";
}

enum eg_status eg_errorf(struct eg_error *err, enum eg_status status, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void eg_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "%s:%d: EG_ASSERT(%s) failed\n", file, line, expr);
    fflush(stderr);
    abort();
}
