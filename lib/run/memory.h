/* memory.h - the memory check before a run: a task's estimate of the bytes the run will hold,
 * made from the config alone (nothing is allocated), checked against the memory the process may
 * use, so that a value the schema allows but the machine cannot hold (eval.batch_size=100000000,
 * method.candidates=100000, a huge backbone) is a config error naming the key, not an abort with
 * "out of memory" half-way through the set-up.
 *
 * An estimate is a list of terms, each the bytes one config key scales (parameters and their
 * copies under the backbone key, EvoGrad's candidates under method.candidates, activations under
 * the batch size that sets them, ...). A task fills it in its check (task.h) and calls
 * memory_check, which refuses a total above the limit naming the term that contributes most.
 *
 * The limit: EVOGRAD_MEMORY_LIMIT when it is set (bytes, or a number with a K, M, G or T suffix
 * for binary multiples: 24G is 24 GiB; it replaces the detection, so it can also raise the
 * limit); else the smallest of the physical memory (sysconf), the cgroup v2 memory.max of the
 * process's cgroup when it is a number, and RLIMIT_AS and RLIMIT_DATA when they are set. */
#ifndef EG_MEMORY_H
#define EG_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define MEMORY_MAX_TERMS 24
#define MEMORY_VALUE_MAX 96

// The bytes one config key scales. bytes and part are doubles: an estimate of an absurd value
// must not overflow.
struct memory_term {
    const char *key;              // "eval.batch_size" (static text)
    char value[MEMORY_VALUE_MAX]; // the key's value as the user wrote it ("100000000")
    const char *what;             // "for activations and their gradients" (static text): the
                                  // largest of the parts added under the key
    double bytes;                 // all parts added under the key
    double part;                  // the largest part (the one `what` names)
};

struct memory_estimate {
    struct memory_term terms[MEMORY_MAX_TERMS];
    size_t n;
};

// Adds bytes (>= 0) for `what` under key, whose value is written from fmt. A key already listed
// gets the bytes added to its term (its value text is kept; what becomes this part's when it is
// the largest so far). At most MEMORY_MAX_TERMS keys (EG_ASSERT).
void memory_add(struct memory_estimate *e, const char *key, const char *what, double bytes,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

// The sum of the terms, in bytes.
double memory_total(const struct memory_estimate *e);

// The term with the most bytes (NULL for an empty estimate).
const struct memory_term *memory_largest(const struct memory_estimate *e);

// buf (cap bytes) = bytes in binary units, 3 significant digits: "313 GiB", "23.4 GiB",
// "512 bytes".
void memory_format(double bytes, char *buf, size_t cap);

// Parses a size: decimal digits, then optionally one of K, M, G, T (either case; 2^10, 2^20,
// 2^30, 2^40). False for anything else (signs, spaces, fractions, other suffixes), for 0 and
// for sizes of 2^63 bytes or more; *bytes is then untouched.
bool memory_parse_size(const char *text, uint64_t *bytes);

struct memory_limit {
    double bytes;
    const char *source; // "physical memory", "cgroup memory.max", "RLIMIT_AS", "RLIMIT_DATA" or
                        // "EVOGRAD_MEMORY_LIMIT" (static text)
};

// The limit (above). EG_ERR_ARG with a message naming EVOGRAD_MEMORY_LIMIT and its value when it
// is set but not a size; *out is then untouched.
enum eg_status memory_limit_get(struct memory_limit *out, struct eg_error *err);

// EG_OK when the estimate's total fits the limit. Else EG_ERR_CONFIG, the message naming the
// largest term's key and value, its bytes, the total when it is larger, and the limit with its
// source, e.g. "eval.batch_size: 100000000 needs about 292 GiB for the evaluation batch; the
// limit is 23.4 GiB (physical memory; set EVOGRAD_MEMORY_LIMIT to change it)". The limit's own
// error (memory_limit_get) is passed on.
enum eg_status memory_check(const struct memory_estimate *e, struct eg_error *err);

#endif // EG_MEMORY_H
