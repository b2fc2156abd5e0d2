/* csv.c - result files: metrics.csv (one stdio stream, flushed after every row, re-openable for a
 * resumed run) and the shared runs.csv (one locked write() per row, so concurrent appenders never
 * interleave). Cells are plain text without ',', '"', '\r' or '\n' (EG_ASSERT: the callers format
 * numbers and identifiers only). Every error message starts with the file's path; outputs the
 * caller passed in are untouched on failure. setlocale is never called, so %.9g prints '.'. */
#include "io/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/alloc.h"

struct csv {
    FILE *fp;
    char *path;  // owned copy, for messages
    size_t ncols;
    size_t rows; // data rows in the file, header excluded
};

// ---------------------------------------------------------------------------------------------
// Line building

// True when s may be written as a cell: no separator, quote or line break.
static bool cell_is_plain(const char *s)
{
    return strpbrk(s, ",\"\r\n") == NULL;
}

// Joins cells[0..n) with ',' and appends '\n'. Returns a new string (caller frees) and its length
// in *len. EG_ASSERTs that every cell is plain and that n >= 1.
static char *join_line(const char *const *cells, size_t n, size_t *len)
{
    EG_ASSERT(n >= 1);
    size_t total = n; // n - 1 commas + '\n'
    for (size_t i = 0; i < n; i++) {
        EG_ASSERT(cells[i] != NULL);
        EG_ASSERT(cell_is_plain(cells[i]));
        total += strlen(cells[i]);
    }
    char *line = eg_xmalloc(total + 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(cells[i]);
        memcpy(line + at, cells[i], l);
        at += l;
        line[at++] = i + 1 < n ? ',' : '\n';
    }
    line[at] = '\0';
    *len = at;
    return line;
}

// Copies at most 60 bytes of a line (without its '\n') into out, for error messages.
static void excerpt(char out[64], const char *s, size_t len)
{
    if (len > 0 && s[len - 1] == '\n') { len--; }
    if (len > 60) {
        memcpy(out, s, 57);
        memcpy(out + 57, "...", 4);
    } else {
        memcpy(out, s, len);
        out[len] = '\0';
    }
}

// ---------------------------------------------------------------------------------------------
// metrics.csv: a stdio stream

// Writes len bytes and flushes them to the OS; fills err naming the file on failure.
static enum eg_status put_flushed(FILE *fp, const char *path, const char *line, size_t len,
                                  struct eg_error *err)
{
    errno = 0;
    if (fwrite(line, 1, len, fp) != len || fflush(fp) != 0 || ferror(fp)) {
        int e = errno != 0 ? errno : EIO;
        return eg_errorf(err, EG_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return EG_OK;
}

// Wraps an open stream into a struct csv (takes fp).
static struct csv *csv_wrap(FILE *fp, const char *path, size_t ncols, size_t rows)
{
    struct csv *c = eg_xmalloc(sizeof *c);
    *c = (struct csv){ .fp = fp, .path = eg_xstrdup(path), .ncols = ncols, .rows = rows };
    return c;
}

enum eg_status csv_create(const char *path, const char *const *columns, size_t ncols,
                          struct csv **out, struct eg_error *err)
{
    size_t len = 0;
    char *header = join_line(columns, ncols, &len);
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        int e = errno;
        free(header);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    enum eg_status s = put_flushed(fp, path, header, len, err);
    free(header);
    if (s != EG_OK) {
        fclose(fp); // the write error is already reported
        return s;
    }
    *out = csv_wrap(fp, path, ncols, 0);
    return EG_OK;
}

enum eg_status csv_reopen(const char *path, const char *const *columns, size_t ncols,
                          size_t keep_rows, struct csv **out, struct eg_error *err)
{
    size_t hlen = 0;
    char *header = join_line(columns, ncols, &hlen);
    char *line = NULL;
    size_t cap = 0;
    enum eg_status s = EG_OK;

    FILE *fp = fopen(path, "r+");
    if (fp == NULL) {
        int e = errno;
        free(header);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot reopen to resume: %s", path, strerror(e));
    }

    // The header must be exactly the run's columns: a resumed run appends the same row shape.
    errno = 0;
    ssize_t n = getline(&line, &cap, fp);
    if (n < 0) {
        s = ferror(fp) ? eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno))
                       : eg_errorf(err, EG_ERR_FORMAT, "%s: empty, expected the header '%.*s'",
                                   path, (int)(hlen - 1), header);
        goto fail;
    }
    if ((size_t)n != hlen || memcmp(line, header, hlen) != 0) {
        char got[64], want[64];
        excerpt(got, line, (size_t)n);
        excerpt(want, header, hlen);
        s = eg_errorf(err, EG_ERR_FORMAT,
                      "%s: header is '%s', expected '%s' (the run's columns differ)", path, got,
                      want);
        goto fail;
    }

    // Keep whole lines only: a row without its '\n' was cut off and is not counted.
    off_t keep_end = (off_t)hlen;
    size_t found = 0;
    while (found < keep_rows) {
        errno = 0;
        n = getline(&line, &cap, fp);
        if (n < 0 && ferror(fp)) {
            s = eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (n <= 0 || line[n - 1] != '\n') { break; }
        size_t commas = 0;
        for (ssize_t i = 0; i < n; i++) { commas += line[i] == ','; }
        if (commas + 1 != ncols) {
            s = eg_errorf(err, EG_ERR_FORMAT, "%s:%zu: row has %zu cells, expected %zu", path,
                          found + 2, commas + 1, ncols);
            goto fail;
        }
        keep_end += (off_t)n;
        found++;
    }
    if (found < keep_rows) {
        s = eg_errorf(err, EG_ERR_FORMAT,
                      "%s: has %zu complete data rows, but the checkpoint resumes after row %zu",
                      path, found, keep_rows);
        goto fail;
    }

    // Drop the rows written after the checkpoint and continue at the cut. fseeko also ends the
    // read phase, so the stream may switch to writing.
    if (fseeko(fp, keep_end, SEEK_SET) != 0 || ftruncate(fileno(fp), keep_end) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot truncate to %zu rows: %s", path, keep_rows,
                      strerror(errno));
        goto fail;
    }
    free(line);
    free(header);
    *out = csv_wrap(fp, path, ncols, keep_rows);
    return EG_OK;

fail:
    free(line);
    free(header);
    fclose(fp); // only read so far: nothing to report
    return s;
}

enum eg_status csv_row(struct csv *c, const char *const *cells, struct eg_error *err)
{
    EG_ASSERT(c != NULL);
    size_t len = 0;
    char *line = join_line(cells, c->ncols, &len);
    enum eg_status s = put_flushed(c->fp, c->path, line, len, err);
    free(line);
    if (s == EG_OK) { c->rows++; }
    return s;
}

size_t csv_rows(const struct csv *c)
{
    EG_ASSERT(c != NULL);
    return c->rows;
}

enum eg_status csv_close(struct csv *c, struct eg_error *err)
{
    if (c == NULL) { return EG_OK; }
    errno = 0;
    bool bad = ferror(c->fp) != 0;
    int e = errno;
    if (fclose(c->fp) != 0) {
        bad = true;
        e = errno;
    }
    enum eg_status s = EG_OK;
    if (bad) {
        s = eg_errorf(err, EG_ERR_IO, "%s: write error: %s", c->path,
                      strerror(e != 0 ? e : EIO));
    }
    free(c->path);
    free(c);
    return s;
}

// ---------------------------------------------------------------------------------------------
// runs.csv: one locked write per row

// write() all of buf, retrying after signals and short writes. Returns 0, or -1 with errno set.
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR) { continue; }
            return -1;
        }
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

// pread() exactly len bytes at off. Returns the count read (short at end of file), or -1.
static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, buf + got, len - got, off + (off_t)got);
        if (r < 0) {
            if (errno == EINTR) { continue; }
            return -1;
        }
        if (r == 0) { break; }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

// Checks, under the caller's lock, that the non-empty file at path (size bytes) starts with
// header (hlen bytes, '\n' included). *needs_newline is set when the file's last byte is not a
// '\n' (a row cut off by a full disk), so the caller starts its row on a fresh line.
static enum eg_status check_existing(const char *path, const char *header, size_t hlen,
                                     off_t size, bool *needs_newline, struct eg_error *err)
{
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    }
    char *got = eg_xmalloc(hlen + 1);
    char last = '\n';
    enum eg_status s = EG_OK;
    ssize_t n = pread_full(rfd, got, hlen, 0);
    if (n < 0 || pread_full(rfd, &last, 1, size - 1) != 1) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    } else if ((size_t)n != hlen || memcmp(got, header, hlen) != 0) {
        size_t l = 0;
        while (l < (size_t)n && got[l] != '\n') { l++; }
        // show both from the first column that differs (the common prefix is no help)
        size_t d = 0, col = 1, start = 0;
        while (d < l && d < hlen && got[d] == header[d]) {
            if (got[d] == ',') {
                col++;
                start = d + 1;
            }
            d++;
        }
        char have[64], want[64];
        excerpt(have, got + start, l - start);
        excerpt(want, header + start, hlen - start);
        s = eg_errorf(err, EG_ERR_FORMAT,
                      "%s: header differs from column %zu on: has '%s', expected '%s' (rows of a "
                      "different shape; use another results name or move the old file)",
                      path, col, have, want);
    }
    free(got);
    close(rfd);
    *needs_newline = last != '\n';
    return s;
}

enum eg_status csv_append_locked(const char *path, const char *const *columns,
                                 const char *const *cells, size_t ncols, struct eg_error *err)
{
    size_t hlen = 0, rlen = 0;
    char *header = join_line(columns, ncols, &hlen);
    char *row = join_line(cells, ncols, &rlen);
    char *buf = eg_xmalloc(1 + hlen + rlen + 1);
    enum eg_status s = EG_OK;

    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot open to append: %s", path, strerror(errno));
        goto done;
    }
    int rc;
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
    if (rc != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot lock: %s", path, strerror(errno));
        goto done;
    }

    // Decided under the lock: whether the header is due, and what the file already says.
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    size_t len = 0;
    if (st.st_size == 0) {
        memcpy(buf, header, hlen);
        len = hlen;
    } else {
        bool nl = false;
        s = check_existing(path, header, hlen, st.st_size, &nl, err);
        if (s != EG_OK) { goto done; }
        if (nl) { buf[len++] = '\n'; }
    }
    memcpy(buf + len, row, rlen);
    len += rlen;

    // One write() of the whole row: with O_APPEND and the lock, no other appender interleaves.
    if (write_all(fd, buf, len) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
    }

done:
    if (fd >= 0 && close(fd) != 0 && s == EG_OK) { // closing also releases the lock
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot append: %s", path, strerror(errno));
    }
    free(buf);
    free(row);
    free(header);
    return s;
}

char *csv_fmt(char *buf, double v)
{
    if (isnan(v)) {
        strcpy(buf, "nan");
    } else if (isinf(v)) {
        strcpy(buf, v > 0 ? "inf" : "-inf");
    } else {
        snprintf(buf, 32, "%.9g", v);
    }
    return buf;
}
