/* csv.c - result files: metrics.csv (one stdio stream, flushed after every row, re-openable for a
 * resumed run) and the shared runs.csv (one locked write() per row, so concurrent appenders never
 * interleave, undone if it fails). Cells are written per RFC 4180: a cell holding ',', '"', '\r'
 * or '\n' goes inside double quotes with each '"' doubled, every other cell as it is. A file is
 * read back only to find where its records end (struct rec_scan follows the quotes, so a quoted
 * '\n' ends no record). Every error message starts with the file's path; outputs the caller
 * passed in are untouched on failure. setlocale is never called, so %.9g prints '.'. */
#include "io/csv.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
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
// Record building (RFC 4180 section 2)

// True when s must be quoted: it holds a separator, a quote or a line break (RFC 4180 2.6).
static bool cell_needs_quotes(const char *s)
{
    return strpbrk(s, ",\"\r\n") != NULL;
}

// Bytes that s takes in a record: strlen(s), or that plus 2 quotes and one per inner '"'.
static size_t cell_len(const char *s)
{
    size_t n = strlen(s);
    if (!cell_needs_quotes(s)) { return n; }
    for (const char *q = strchr(s, '"'); q != NULL; q = strchr(q + 1, '"')) { n++; }
    return n + 2;
}

// Writes s at out as cell_len(s) bytes (no NUL); returns the byte after them.
static char *cell_put(char *out, const char *s)
{
    if (!cell_needs_quotes(s)) {
        size_t n = strlen(s);
        memcpy(out, s, n);
        return out + n;
    }
    *out++ = '"';
    for (; *s != '\0'; s++) {
        if (*s == '"') { *out++ = '"'; } // RFC 4180 2.7: an inner quote is doubled
        *out++ = *s;
    }
    *out++ = '"';
    return out;
}

// One record of cells[0..n) (csv.h); the table command writes its CSV with it too.
char *csv_record(const char *const *cells, size_t n, size_t *len)
{
    EG_ASSERT(n >= 1);
    size_t total = n; // n - 1 commas + '\n'
    for (size_t i = 0; i < n; i++) {
        EG_ASSERT(cells[i] != NULL);
        total += cell_len(cells[i]);
    }
    char *rec = eg_xmalloc(total + 1);
    char *at = rec;
    for (size_t i = 0; i < n; i++) {
        at = cell_put(at, cells[i]);
        *at++ = i + 1 < n ? ',' : '\n';
    }
    *at = '\0';
    *len = (size_t)(at - rec);
    EG_ASSERT(*len == total);
    return rec;
}

enum { EXCERPT_MAX = 72 };

// Copies s[0..len) into out for an error message, with the bytes below 32 and 127 written as
// \r, \n, \t or \xNN so that an invisible difference shows; cut to about 60 bytes plus "...".
static void excerpt(char out[EXCERPT_MAX], const char *s, size_t len)
{
    size_t at = 0;
    for (size_t i = 0; i < len; i++) {
        if (at > 60) {
            memcpy(out + at, "...", 4);
            return;
        }
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r' || ch == '\n' || ch == '\t') {
            out[at++] = '\\';
            out[at++] = ch == '\r' ? 'r' : ch == '\n' ? 'n' : 't';
        } else if (ch < 32 || ch == 127) {
            at += (size_t)snprintf(out + at, 5, "\\x%02x", ch);
        } else {
            out[at++] = (char)ch;
        }
    }
    out[at] = '\0';
}

// ---------------------------------------------------------------------------------------------
// Record scanning: where records end, following the quotes

enum scan_state {
    SCAN_CELL_START, // at the first byte of a cell (of a record, when fresh)
    SCAN_PLAIN,      // inside an unquoted cell
    SCAN_QUOTED,     // inside a quoted cell
    SCAN_QUOTE_SEEN, // after a '"' inside a quoted cell: its closing quote, or half of a '""'
};

enum scan_event {
    SCAN_BYTE,       // the byte belongs to the current record
    SCAN_RECORD_END, // the byte was the '\n' that ends a record
    SCAN_MALFORMED,  // a '"' inside an unquoted cell, or a byte other than '"' ',' '\n' after a
                     // closing quote: the records of such a file cannot be told apart
};

// A scan through a file's bytes. A record starts with its first byte, so after SCAN_RECORD_END
// cells and rec_line still describe the record that just ended.
struct rec_scan {
    enum scan_state state;
    bool fresh;      // no byte of the next record seen yet
    size_t cells;    // cells of the current record so far (1 + separators outside quotes)
    size_t line;     // 1-based line of the next byte
    size_t rec_line; // line where the current record starts
};

static struct rec_scan scan_start(size_t line)
{
    return (struct rec_scan){ .state = SCAN_CELL_START, .fresh = true, .line = line };
}

// Feeds the next byte ch of the file to sc.
static enum scan_event scan_byte(struct rec_scan *sc, char ch)
{
    if (sc->fresh) {
        sc->fresh = false;
        sc->cells = 1;
        sc->rec_line = sc->line;
    }
    if (ch == '\n') { sc->line++; }
    switch (sc->state) {
    case SCAN_QUOTED:
        if (ch == '"') { sc->state = SCAN_QUOTE_SEEN; }
        return SCAN_BYTE;
    case SCAN_QUOTE_SEEN:
        if (ch == '"') { // "" stands for one quote, and the cell goes on
            sc->state = SCAN_QUOTED;
            return SCAN_BYTE;
        }
        if (ch != ',' && ch != '\n') { return SCAN_MALFORMED; }
        break; // the cell ended with its closing quote: ch ends it, as below
    case SCAN_CELL_START:
    case SCAN_PLAIN:
        if (ch == '"') {
            if (sc->state == SCAN_PLAIN) { return SCAN_MALFORMED; }
            sc->state = SCAN_QUOTED;
            return SCAN_BYTE;
        }
        break;
    }
    if (ch == ',') {
        sc->cells++;
        sc->state = SCAN_CELL_START;
        return SCAN_BYTE;
    }
    if (ch == '\n') {
        sc->state = SCAN_CELL_START;
        sc->fresh = true;
        return SCAN_RECORD_END;
    }
    sc->state = SCAN_PLAIN;
    return SCAN_BYTE;
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

// What walk_records found between from and to.
struct rec_walk {
    size_t records;   // whole records: each ended by a '\n' outside quotes
    off_t end;        // offset just after the last of them (from when there is none)
    bool cut;         // bytes follow end up to to: a record without its '\n' (set only when the
                      // walk reached to, i.e. found fewer than max records)
    size_t cut_cells; // its cells so far
    size_t cut_line;  // the line it starts on
};

// Reads fd's bytes [from, to) with pread, where from is the start of a record on line `line`,
// and counts whole records until max of them are found. When want_cells > 0, every whole record
// must have that many cells. Fills *w. Errors (EG_ERR_IO, or EG_ERR_FORMAT naming path:line)
// for a read error, malformed quoting, or a record of another width.
static enum eg_status walk_records(int fd, const char *path, off_t from, off_t to, size_t line,
                                   size_t max, size_t want_cells, struct rec_walk *w,
                                   struct eg_error *err)
{
    char buf[16384];
    struct rec_scan sc = scan_start(line);
    *w = (struct rec_walk){ .end = from };
    off_t off = from;
    while (off < to && w->records < max) {
        size_t want = to - off < (off_t)sizeof buf ? (size_t)(to - off) : sizeof buf;
        ssize_t n = pread_full(fd, buf, want, off);
        if (n < 0) {
            return eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        }
        if (n == 0) { break; } // the file shrank under an unlocked reader: stop at its end
        for (ssize_t i = 0; i < n && w->records < max; i++) {
            enum scan_event ev = scan_byte(&sc, buf[i]);
            if (ev == SCAN_MALFORMED) {
                return eg_errorf(err, EG_ERR_FORMAT,
                                 "%s:%zu: a '\"' inside an unquoted cell or after a closing "
                                 "quote, so the rows cannot be told apart (not RFC 4180 CSV; fix "
                                 "that line or move the file)",
                                 path, sc.line);
            }
            if (ev == SCAN_RECORD_END) {
                if (want_cells > 0 && sc.cells != want_cells) {
                    return eg_errorf(err, EG_ERR_FORMAT, "%s:%zu: row has %zu cells, expected %zu",
                                     path, sc.rec_line, sc.cells, want_cells);
                }
                w->records++;
                w->end = off + (off_t)i + 1;
            }
        }
        off += (off_t)n;
    }
    if (w->records < max && !sc.fresh) {
        w->cut = true;
        w->cut_cells = sc.cells;
        w->cut_line = sc.rec_line;
    }
    return EG_OK;
}

// Checks that the file fd (size > 0 bytes) starts with the header record (hlen bytes, '\n'
// included). A file that is exactly the header without its final '\n' is accepted with
// *no_newline set: the caller adds the '\n'. On a mismatch the message names path, shows both
// headers from the first column that differs (escaped: excerpt) and ends with hint.
static enum eg_status check_header(int fd, const char *path, off_t size, const char *header,
                                   size_t hlen, const char *hint, bool *no_newline,
                                   struct eg_error *err)
{
    size_t cap = hlen + 64; // the header and enough of what follows it to show a difference
    char *got = eg_xmalloc(cap);
    ssize_t n = pread_full(fd, got, size < (off_t)cap ? (size_t)size : cap, 0);
    enum eg_status s = EG_OK;
    *no_newline = false;
    if (n < 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    } else if ((size_t)n >= hlen && memcmp(got, header, hlen) == 0) {
        s = EG_OK;
    } else if ((off_t)n == size && (size_t)n == hlen - 1 && memcmp(got, header, hlen - 1) == 0) {
        *no_newline = true;
    } else {
        size_t g = (size_t)n, l = 0; // the file's first line, without its '\n'
        while (l < g && got[l] != '\n') { l++; }
        // show both from the first column that differs (the common prefix is no help)
        size_t d = 0, col = 1, start = 0;
        bool quoted = false;
        while (d < l && d < hlen - 1 && got[d] == header[d]) {
            if (header[d] == '"') {
                quoted = !quoted;
            } else if (header[d] == ',' && !quoted) {
                col++;
                start = d + 1;
            }
            d++;
        }
        char have[EXCERPT_MAX], want[EXCERPT_MAX];
        excerpt(have, got + start, l - start);
        excerpt(want, header + start, hlen - 1 - start);
        s = eg_errorf(err, EG_ERR_FORMAT,
                      "%s: header differs from column %zu on: has '%s', expected '%s' %s", path,
                      col, have, want, hint);
    }
    free(got);
    return s;
}

// Lines that a formatted record of len bytes takes (its '\n's, the last one included).
static size_t record_lines(const char *rec, size_t len)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) { lines += rec[i] == '\n'; }
    return lines;
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
    char *header = csv_record(columns, ncols, &len);
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
    char *header = csv_record(columns, ncols, &hlen);
    enum eg_status s = EG_OK;

    FILE *fp = fopen(path, "r+");
    if (fp == NULL) {
        int e = errno;
        free(header);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot reopen to resume: %s", path, strerror(e));
    }
    // The file is read with pread on its descriptor; the stream has read nothing, so its first
    // use is the fseeko below.
    int fd = fileno(fp);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (st.st_size == 0) {
        s = eg_errorf(err, EG_ERR_FORMAT, "%s: empty, expected the header '%.*s'", path,
                      (int)(hlen - 1), header);
        goto fail;
    }

    // The header must be exactly the run's columns: a resumed run appends the same row shape.
    bool no_newline = false;
    s = check_header(fd, path, st.st_size, header, hlen, "(the run's columns differ)",
                     &no_newline, err);
    if (s != EG_OK) { goto fail; }

    // Keep whole records only: a row without its '\n' was cut off and is not counted.
    off_t hend = no_newline ? (off_t)hlen - 1 : (off_t)hlen;
    struct rec_walk w;
    s = walk_records(fd, path, hend, st.st_size, 1 + record_lines(header, hlen), keep_rows, ncols,
                     &w, err);
    if (s != EG_OK) { goto fail; }
    if (w.records < keep_rows) {
        s = eg_errorf(err, EG_ERR_FORMAT,
                      "%s: has %zu complete data rows, but the checkpoint resumes after row %zu",
                      path, w.records, keep_rows);
        goto fail;
    }

    // Drop the rows written after the checkpoint and continue at the cut. fseeko also ends the
    // read phase, so the stream may switch to writing.
    if (fseeko(fp, w.end, SEEK_SET) != 0 || ftruncate(fd, w.end) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot truncate to %zu rows: %s", path, keep_rows,
                      strerror(errno));
        goto fail;
    }
    if (no_newline) { // the header's missing '\n', so that the first row starts a line
        s = put_flushed(fp, path, "\n", 1, err);
        if (s != EG_OK) { goto fail; }
    }
    free(header);
    *out = csv_wrap(fp, path, ncols, keep_rows);
    return EG_OK;

fail:
    free(header);
    fclose(fp); // any write error is already reported
    return s;
}

enum eg_status csv_row(struct csv *c, const char *const *cells, struct eg_error *err)
{
    EG_ASSERT(c != NULL);
    size_t len = 0;
    char *rec = csv_record(cells, c->ncols, &len);
    enum eg_status s = put_flushed(c->fp, c->path, rec, len, err);
    free(rec);
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
// runs.csv: one locked write per row, undone if it fails

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

// Decides, under the caller's lock, where the new bytes of a regular file that is not empty go:
// checks its header (hlen bytes of header), and sets *keep to the size to cut the file back to
// before writing (below size when its last row has no '\n': a row cut off by a crash, which is no
// whole record and is dropped) and *no_newline when the file is the header without its '\n'.
// A last line with more cells than ncols is no cut-off row of this file: an error, not dropped.
static enum eg_status plan_append(int fd, const char *path, off_t size, const char *header,
                                  size_t hlen, size_t ncols, off_t *keep, bool *no_newline,
                                  struct eg_error *err)
{
    enum eg_status s = check_header(fd, path, size, header, hlen,
                                    "(rows of a different shape; use another results name or "
                                    "move the old file)",
                                    no_newline, err);
    if (s != EG_OK) { return s; }
    *keep = size;
    if (*no_newline) { return EG_OK; }
    // Every record is read to know where the last one ends: a quoted '\n' ends none. The rows in
    // between are not checked: older versions left cut-off rows with fewer cells there.
    struct rec_walk w;
    s = walk_records(fd, path, (off_t)hlen, size, 1 + record_lines(header, hlen), SIZE_MAX, 0,
                     &w, err);
    if (s != EG_OK) { return s; }
    if (w.cut) {
        if (w.cut_cells > ncols) {
            return eg_errorf(err, EG_ERR_FORMAT,
                             "%s:%zu: the last row has no final newline and %zu cells, more than "
                             "the %zu columns, so it is not a row cut off while it was written "
                             "(fix or remove that line)",
                             path, w.cut_line, w.cut_cells, ncols);
        }
        *keep = w.end;
    }
    return EG_OK;
}

enum eg_status csv_check_header(const char *path, const char *const *columns, size_t ncols,
                                struct eg_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return EG_OK;
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    enum eg_status s = EG_OK;
    if (fstat(fd, &st) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (S_ISREG(st.st_mode) && st.st_size > 0) {
        size_t hlen = 0;
        char *header = csv_record(columns, ncols, &hlen);
        bool no_newline;
        s = check_header(fd, path, st.st_size, header, hlen, "(the run's columns differ)",
                         &no_newline, err);
        free(header);
    }
    close(fd);
    return s;
}

enum eg_status csv_append_locked(const char *path, const char *const *columns,
                                 const char *const *cells, size_t ncols, struct eg_error *err)
{
    size_t hlen = 0, rlen = 0;
    char *header = csv_record(columns, ncols, &hlen);
    char *row = csv_record(cells, ncols, &rlen);
    char *buf = eg_xmalloc(hlen + rlen + 1);
    enum eg_status s = EG_OK;

    // O_RDWR: the file is read (pread) and cut back (ftruncate) through the locked descriptor.
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
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

    // Decided under the lock: whether the header is due, and what the file already holds.
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    // A device or a pipe (--runs /dev/null) has nothing to read back or cut: the record is
    // written as to a new file.
    bool regular = S_ISREG(st.st_mode);
    off_t keep = regular ? st.st_size : 0;
    size_t len = 0;
    if (!regular || st.st_size == 0) {
        memcpy(buf, header, hlen);
        len = hlen;
    } else {
        bool no_newline = false;
        s = plan_append(fd, path, st.st_size, header, hlen, ncols, &keep, &no_newline, err);
        if (s != EG_OK) { goto done; }
        if (no_newline) { buf[len++] = '\n'; }
    }
    memcpy(buf + len, row, rlen);
    len += rlen;

    if (keep < st.st_size && ftruncate(fd, keep) != 0) {
        s = eg_errorf(err, EG_ERR_IO, "%s: cannot drop the cut-off last row: %s", path,
                      strerror(errno));
        goto done;
    }
    // One write() of the whole record: with O_APPEND and the lock, no other appender interleaves.
    // If it or the fsync fails (a full disk, a file size limit), the file is cut back to keep, so
    // no torn row is left for the next appender to write after.
    // (fsync's EINVAL means a file system that cannot sync: nothing was lost.)
    if (write_all(fd, buf, len) != 0 || (regular && fsync(fd) != 0 && errno != EINVAL)) {
        int e = errno;
        if (regular && ftruncate(fd, keep) != 0) {
            s = eg_errorf(err, EG_ERR_IO,
                          "%s: cannot append: %s; removing the partly written row failed too "
                          "(%s): delete the last line by hand",
                          path, strerror(e), strerror(errno));
        } else {
            s = eg_errorf(err, EG_ERR_IO, "%s: cannot append: %s", path, strerror(e));
        }
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
