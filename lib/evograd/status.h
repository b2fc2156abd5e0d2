/* evograd/status.h - how libevograd reports bad input (part of the public API, installed as
 * <evograd/status.h>; <evograd/evograd.h> includes it). A function that can fail on its input
 * returns an enum eg_status and fills a caller-owned struct eg_error with one complete message
 * naming the file, line and column, or the offending value. Programming errors (a NULL where a
 * buffer belongs, sizes that do not match) abort with the file and line instead; running out of
 * memory aborts with the size asked for. */
#ifndef EVOGRAD_STATUS_H
#define EVOGRAD_STATUS_H

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

#endif // EVOGRAD_STATUS_H
