/* memory.c - memory estimates, the limit and the check before a run (memory.h). */
#include "memory.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// estimates

void memory_add(struct memory_estimate *e, const char *key, const char *what, double bytes,
                const char *fmt, ...)
{
    EG_ASSERT(e != NULL && key != NULL && what != NULL && bytes >= 0.0);
    struct memory_term *t = NULL;
    for (size_t i = 0; i < e->n && t == NULL; i++) {
        if (strcmp(e->terms[i].key, key) == 0) t = &e->terms[i];
    }
    if (t == NULL) {
        EG_ASSERT(e->n < MEMORY_MAX_TERMS);
        t = &e->terms[e->n++];
        *t = (struct memory_term){.key = key, .what = what};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->value, sizeof t->value, fmt, ap);
        va_end(ap);
    }
    t->bytes += bytes;
    if (bytes > t->part) {
        t->part = bytes;
        t->what = what;
    }
}

double memory_total(const struct memory_estimate *e)
{
    double sum = 0.0;
    for (size_t i = 0; i < e->n; i++)
        sum += e->terms[i].bytes;
    return sum;
}

const struct memory_term *memory_largest(const struct memory_estimate *e)
{
    const struct memory_term *best = NULL;
    for (size_t i = 0; i < e->n; i++) {
        if (best == NULL || e->terms[i].bytes > best->bytes) best = &e->terms[i];
    }
    return best;
}

void memory_format(double bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    const size_t nunits = sizeof units / sizeof units[0];
    size_t u = 0;
    double v = bytes;
    while (v >= 1024.0 && u + 1 < nunits) {
        v /= 1024.0;
        u++;
    }
    if (u == 0) {
        snprintf(buf, cap, "%.0f bytes", v);
    } else {
        snprintf(buf, cap, v < 10.0 ? "%.2f %s" : v < 100.0 ? "%.1f %s" : "%.0f %s", v, units[u]);
    }
}

// ---------------------------------------------------------------------------------------------
// the limit

bool memory_parse_size(const char *text, uint64_t *bytes)
{
    if (text == NULL || text[0] < '0' || text[0] > '9') return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno == ERANGE) return false;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        return false;
    }
    if (shift > 0 && end[1] != '\0') return false;
    if (v == 0 || v > (UINT64_MAX >> 1) >> shift) return false; // below 2^63 after the suffix
    *bytes = (uint64_t)v << shift;
    return true;
}

// The number in the file at path (a cgroup's memory.max), or 0 when it cannot be read or is
// not a number ("max").
static double read_limit_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0.0;
    char line[64] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!got) return 0.0;
    line[strcspn(line, "\n")] = '\0';
    uint64_t v = 0;
    return memory_parse_size(line, &v) ? (double)v : 0.0;
}

// The smallest memory.max of the process's cgroup v2 (the "0::<path>" line of /proc/self/cgroup)
// and its ancestors up to /sys/fs/cgroup itself; 0 when none is a number.
static double cgroup_limit(void)
{
    char path[1024] = "";
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f != NULL) {
        char line[1024];
        while (fgets(line, sizeof line, f) != NULL) {
            if (strncmp(line, "0::", 3) != 0) continue;
            line[strcspn(line, "\n")] = '\0';
            snprintf(path, sizeof path, "%s", line + 3);
            break;
        }
        fclose(f);
    }
    double best = 0.0;
    for (;;) {
        size_t len = strlen(path);
        while (len > 0 && path[len - 1] == '/')
            path[--len] = '\0'; // the root's "/" too
        char file[1100];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/memory.max", path);
        double v = read_limit_file(file);
        if (v > 0.0 && (best == 0.0 || v < best)) best = v;
        char *slash = strrchr(path, '/');
        if (len == 0) break;
        if (slash == NULL) {
            path[0] = '\0';
        } else {
            *slash = '\0';
        }
    }
    return best;
}

// Replaces *l with (bytes, source) when bytes is a limit smaller than it.
static void take_smaller(struct memory_limit *l, double bytes, const char *source)
{
    if (bytes > 0.0 && (l->bytes == 0.0 || bytes < l->bytes)) {
        *l = (struct memory_limit){.bytes = bytes, .source = source};
    }
}

enum eg_status memory_limit_get(struct memory_limit *out, struct eg_error *err)
{
    const char *env = getenv("EVOGRAD_MEMORY_LIMIT");
    if (env != NULL) {
        uint64_t v = 0;
        if (!memory_parse_size(env, &v)) {
            return eg_errorf(err, EG_ERR_ARG,
                             "EVOGRAD_MEMORY_LIMIT: expected a size in bytes, optionally with a "
                             "K, M, G or T suffix (e.g. 24G), got '%s'",
                             env);
        }
        *out = (struct memory_limit){.bytes = (double)v, .source = "EVOGRAD_MEMORY_LIMIT"};
        return EG_OK;
    }
    struct memory_limit l = {0};
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) take_smaller(&l, (double)pages * (double)page, "physical memory");
    take_smaller(&l, cgroup_limit(), "cgroup memory.max");
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        take_smaller(&l, (double)r.rlim_cur, "RLIMIT_AS");
    }
    if (getrlimit(RLIMIT_DATA, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        take_smaller(&l, (double)r.rlim_cur, "RLIMIT_DATA");
    }
    if (l.bytes == 0.0) l = (struct memory_limit){.bytes = 1e300, .source = "nothing known"};
    *out = l;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// the check

enum eg_status memory_check(const struct memory_estimate *e, struct eg_error *err)
{
    struct memory_limit lim;
    enum eg_status st = memory_limit_get(&lim, err);
    if (st != EG_OK) return st;
    const double total = memory_total(e);
    if (total <= lim.bytes) return EG_OK;
    const struct memory_term *t = memory_largest(e);
    EG_ASSERT(t != NULL); // a positive total has a term
    char need[32], all[32], limit[32], in_all[64] = "";
    memory_format(t->bytes, need, sizeof need);
    memory_format(total, all, sizeof all);
    memory_format(lim.bytes, limit, sizeof limit);
    if (strcmp(need, all) != 0) snprintf(in_all, sizeof in_all, " (the run about %s in all)", all);
    const bool env = strcmp(lim.source, "EVOGRAD_MEMORY_LIMIT") == 0;
    return eg_errorf(err, EG_ERR_CONFIG, "%s: %s needs about %s %s%s; the limit is %s (%s%s)",
                     t->key, t->value, need, t->what, in_all, limit, lim.source,
                     env ? "" : "; set EVOGRAD_MEMORY_LIMIT to change it");
}
