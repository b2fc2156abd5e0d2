/* idx.c - the IDX loader (MNIST, Fashion-MNIST): an image file and its label file.
 *
 * Format (http://yann.lecun.com/exdb/mnist/): a big-endian magic 0x0000TTDD (TT = 0x08 for
 * unsigned bytes, DD = number of dimensions), DD big-endian uint32 sizes, then the elements
 * row-major. Images are 0x00000803 (n, h, w), labels 0x00000801 (n). A file that starts with the
 * gzip magic 1f 8b is inflated with zlib's inflate (RFC 1952, one or more members); any other
 * file is read as raw IDX bytes.
 *
 * Every byte count is checked. A file must hold exactly its header and data: short files,
 * corrupt gzip streams and trailing bytes are all errors. A gzip stream counts only once inflate
 * has returned Z_STREAM_END for it, i.e. after the trailer's CRC-32 and length matched: a file
 * cut anywhere, even by one trailer byte, is refused (zlib's gzread accepts a missing trailer
 * when the last read happens to end with the data). Data buffers grow as bytes actually arrive
 * (and are read straight into), so a header claiming billions of images costs no more memory
 * than the file really holds. Nothing leaks on failure, and *out is written last. */
#include "dataset.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/alloc.h"

// Absurd-size guards, far above any real IDX set (MNIST: 60,000 x 28 x 28) but small enough
// that n*h*w cannot overflow size_t even where it is 32 bits.
#define IDX_MAX_SIDE 65536u                      // h, w
#define IDX_MAX_IMAGE_PIXELS (1u << 24)          // h * w
#define IDX_MAX_TOTAL_BYTES ((size_t)UINT32_MAX) // n * h * w: 4 GiB

// Input buffer (compressed side); 256 KiB keeps the read() calls few.
#define IDX_IN_BUFFER ((size_t)256 * 1024)
// First size of a growing data buffer (MNIST's 47 MB of pixels fit in it: one allocation).
#define IDX_FIRST_CHUNK ((size_t)64 << 20)
// Largest single inflate output: z_stream's avail_out is an unsigned int.
#define IDX_MAX_READ ((size_t)1 << 30)

// One open IDX file. Raw files are served from in[] first, then straight from fp.
struct idx_file {
    const char *path;
    const char *kind; // "images" or "labels", for messages
    FILE *fp;
    uint8_t *in;      // (IDX_IN_BUFFER) input bytes, owned; next unread byte at in + in_next
    size_t in_next, in_len;
    bool in_eof;      // fread has reached the end of the file
    bool gzip;        // the file starts with the gzip magic
    bool zs_live;     // zs needs inflateEnd
    bool member_done; // inflate returned Z_STREAM_END for the current member (CRC and length ok)
    bool truncated;   // the gzip stream ended early: the file is cut short
    z_stream zs;
    size_t pos;       // IDX bytes delivered so far (header included)
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

// zlib's allocator hooks: running out of memory is tier 2 (eg_xmalloc aborts), so inflate never
// returns Z_MEM_ERROR.
static void *idx_zalloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    return eg_xmalloc_array(items, size);
}

static void idx_zfree(void *opaque, void *p)
{
    (void)opaque;
    free(p);
}

static enum eg_status idx_read_error(const struct idx_file *f, int saved_errno,
                                     struct eg_error *err)
{
    return eg_errorf(err, EG_ERR_IO, "%s: read error in IDX %s file after %zu bytes: %s", f->path,
                     f->kind, f->pos, strerror(saved_errno));
}

// Refills in[] (after keeping its unread bytes at the front) unless the file has ended.
static enum eg_status idx_fill(struct idx_file *f, struct eg_error *err)
{
    size_t keep = f->in_len - f->in_next;
    memmove(f->in, f->in + f->in_next, keep);
    f->in_next = 0;
    f->in_len = keep;
    if (f->in_eof) return EG_OK;
    errno = 0;
    size_t got = fread(f->in + keep, 1, IDX_IN_BUFFER - keep, f->fp);
    f->in_len += got;
    if (got < IDX_IN_BUFFER - keep) {
        if (ferror(f->fp)) return idx_read_error(f, errno, err);
        f->in_eof = true;
    }
    return EG_OK;
}

static void idx_close(struct idx_file *f)
{
    if (f->zs_live) inflateEnd(&f->zs);
    if (f->fp != NULL) fclose(f->fp); // read-only: nothing to flush, nothing to lose
    free(f->in);
    f->zs_live = false;
    f->fp = NULL;
    f->in = NULL;
}

// Opens path and tells gzip from raw by the first two bytes. On failure f holds nothing.
static enum eg_status idx_open(struct idx_file *f, const char *path, const char *kind,
                               struct eg_error *err)
{
    *f = (struct idx_file){.path = path, .kind = kind};
    errno = 0;
    f->fp = fopen(path, "rb");
    if (f->fp == NULL) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open IDX %s file: %s", path, kind,
                         strerror(errno));
    }
    f->in = eg_xmalloc(IDX_IN_BUFFER);
    enum eg_status st = idx_fill(f, err);
    if (st == EG_OK && f->in_len >= 2 && f->in[0] == 0x1f && f->in[1] == 0x8b) {
        f->gzip = true;
        f->zs.zalloc = idx_zalloc;
        f->zs.zfree = idx_zfree;
        // 16 + 15: a gzip wrapper (header, CRC-32 and length checked) and a 32 KiB window
        if (inflateInit2(&f->zs, 16 + MAX_WBITS) != Z_OK) {
            st = eg_errorf(err, EG_ERR_FORMAT, "%s: zlib cannot start inflating IDX %s file: %s",
                           path, kind, f->zs.msg != NULL ? f->zs.msg : "inflateInit2 failed");
        } else {
            f->zs_live = true;
        }
    }
    if (st != EG_OK) idx_close(f);
    return st;
}

// The message for inflate's Z_DATA_ERROR, naming a bad trailer as such.
static enum eg_status idx_corrupt(const struct idx_file *f, struct eg_error *err)
{
    const char *zmsg = f->zs.msg != NULL ? f->zs.msg : "inflate failed";
    const char *what = NULL;
    if (strcmp(zmsg, "incorrect data check") == 0) {
        what = "CRC mismatch: the CRC-32 in the gzip trailer does not match the data";
    } else if (strcmp(zmsg, "incorrect length check") == 0) {
        what = "length mismatch: the length in the gzip trailer does not match the data";
    }
    if (what != NULL) {
        return eg_errorf(err, EG_ERR_FORMAT, "%s: corrupt gzip data in IDX %s file: %s (zlib: %s)",
                         f->path, f->kind, what, zmsg);
    }
    return eg_errorf(err, EG_ERR_FORMAT, "%s: corrupt gzip data in IDX %s file after %zu bytes: %s",
                     f->path, f->kind, f->pos, zmsg);
}

// After a member's Z_STREAM_END: more input must be another gzip member (RFC 1952 allows a
// series); anything else is trailing garbage. *more: another member follows.
static enum eg_status idx_next_member(struct idx_file *f, bool *more, struct eg_error *err)
{
    *more = false;
    if (f->in_len - f->in_next < 2) {
        enum eg_status st = idx_fill(f, err);
        if (st != EG_OK) return st;
    }
    size_t left = f->in_len - f->in_next;
    if (left == 0) return EG_OK; // a clean end
    const uint8_t *p = f->in + f->in_next;
    if (left < 2 || p[0] != 0x1f || p[1] != 0x8b) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: trailing bytes after the gzip stream of IDX %s file (0x%02x...): "
                         "not another gzip member",
                         f->path, f->kind, (unsigned)p[0]);
    }
    inflateReset(&f->zs);
    f->member_done = false;
    *more = true;
    return EG_OK;
}

// Inflates up to len bytes into buf (len <= IDX_MAX_READ); *got: bytes written. Short only at
// the verified end of the last member, or when the file is cut short (f->truncated set).
static enum eg_status idx_inflate(struct idx_file *f, uint8_t *buf, size_t len, size_t *got,
                                  struct eg_error *err)
{
    *got = 0;
    while (*got < len && !f->truncated) {
        if (f->member_done) {
            bool more = false;
            enum eg_status st = idx_next_member(f, &more, err);
            if (st != EG_OK) return st;
            if (!more) break;
        }
        if (f->in_next == f->in_len) {
            enum eg_status st = idx_fill(f, err);
            if (st != EG_OK) return st;
        }
        f->zs.next_in = f->in + f->in_next;
        f->zs.avail_in = (unsigned)(f->in_len - f->in_next);
        f->zs.next_out = buf + *got;
        f->zs.avail_out = (unsigned)(len - *got);
        int r = inflate(&f->zs, Z_NO_FLUSH);
        size_t made = len - *got - f->zs.avail_out;
        f->in_next = f->in_len - f->zs.avail_in;
        *got += made;
        f->pos += made;
        if (r == Z_STREAM_END) {
            f->member_done = true;
        } else if (r == Z_DATA_ERROR) {
            return idx_corrupt(f, err);
        } else if (r == Z_BUF_ERROR) {
            // No progress with room to write: inflate needs input, and idx_fill found none, so
            // the file ends inside the stream (in the deflate data or the trailer).
            f->truncated = true;
        } else if (r != Z_OK) {
            return eg_errorf(err, EG_ERR_FORMAT, "%s: zlib failed on IDX %s file (code %d): %s",
                             f->path, f->kind, r, f->zs.msg != NULL ? f->zs.msg : "no message");
        }
    }
    return EG_OK;
}

// Copies up to len raw bytes into buf: what in[] holds, then straight from the file.
static enum eg_status idx_read_raw(struct idx_file *f, uint8_t *buf, size_t len, size_t *got,
                                   struct eg_error *err)
{
    size_t n = min_size(len, f->in_len - f->in_next);
    memcpy(buf, f->in + f->in_next, n);
    f->in_next += n;
    f->pos += n;
    *got = n;
    if (n < len && !f->in_eof) {
        errno = 0;
        size_t r = fread(buf + n, 1, len - n, f->fp);
        *got += r;
        f->pos += r;
        if (r < len - n) {
            if (ferror(f->fp)) return idx_read_error(f, errno, err);
            f->in_eof = true;
        }
    }
    return EG_OK;
}

// Reads up to len bytes into buf, stopping early only at the end of the data or on an error.
// *got: bytes read (also added to f->pos). Returns EG_OK at an end (f->truncated tells a cut
// gzip stream from a complete one), else fills err.
static enum eg_status idx_read_some(struct idx_file *f, uint8_t *buf, size_t len, size_t *got,
                                    struct eg_error *err)
{
    if (!f->gzip) return idx_read_raw(f, buf, len, got, err);
    *got = 0;
    while (*got < len) {
        size_t want = min_size(len - *got, IDX_MAX_READ);
        size_t n = 0;
        enum eg_status st = idx_inflate(f, buf + *got, want, &n, err);
        if (st != EG_OK) return st;
        *got += n;
        if (n < want) break;
    }
    return EG_OK;
}

// The message for data that ended after `got` of `want` bytes of `what`.
static enum eg_status idx_truncated(const struct idx_file *f, const char *what, size_t want,
                                    size_t got, struct eg_error *err)
{
    if (f->truncated) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: truncated IDX %s file (truncated gzip stream: unexpected end of "
                         "file): expected %zu bytes of %s, got %zu",
                         f->path, f->kind, want, what, got);
    }
    return eg_errorf(err, EG_ERR_FORMAT,
                     "%s: truncated IDX %s file: expected %zu bytes of %s, got %zu", f->path,
                     f->kind, want, what, got);
}

// Reads exactly len bytes into buf (the header: small and fixed).
static enum eg_status idx_read_exact(struct idx_file *f, uint8_t *buf, size_t len, const char *what,
                                     struct eg_error *err)
{
    size_t got = 0;
    enum eg_status st = idx_read_some(f, buf, len, &got, err);
    if (st != EG_OK) return st;
    if (got < len) return idx_truncated(f, what, len, got, err);
    return EG_OK;
}

// Reads exactly len data bytes into a new buffer (*out, caller frees), which grows as the data
// arrives: a lying header cannot make us allocate much more than the file holds.
static enum eg_status idx_read_data(struct idx_file *f, size_t len, uint8_t **out,
                                    struct eg_error *err)
{
    size_t cap = min_size(len, IDX_FIRST_CHUNK);
    uint8_t *buf = eg_xmalloc(cap);
    size_t have = 0;
    for (;;) {
        size_t got = 0;
        enum eg_status st = idx_read_some(f, buf + have, cap - have, &got, err);
        if (st != EG_OK) {
            free(buf);
            return st;
        }
        have += got;
        if (have == len) break;
        if (have < cap) { // ended early
            free(buf);
            return idx_truncated(f, "data after the header", len, have, err);
        }
        cap = cap > len / 2 ? len : cap * 2;
        buf = eg_xrealloc(buf, cap);
    }
    *out = buf;
    return EG_OK;
}

// Fails unless the file ends here; counts any trailing bytes for the message. For a gzip file
// this reads on to the end of the stream, so the trailer (CRC-32 and length) of every member has
// been checked, and the file must end there.
static enum eg_status idx_expect_end(struct idx_file *f, struct eg_error *err)
{
    size_t end = f->pos;
    uint8_t scratch[4096];
    for (;;) {
        size_t got = 0;
        enum eg_status st = idx_read_some(f, scratch, sizeof scratch, &got, err);
        if (st != EG_OK) return st;
        if (got < sizeof scratch) break;
    }
    if (f->truncated) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: truncated gzip stream in IDX %s file: the file ends after %zu bytes "
                         "of data, before the end of the gzip stream (its CRC-32 and length "
                         "trailer is missing or incomplete)",
                         f->path, f->kind, f->pos);
    }
    if (f->pos != end) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: %zu trailing byte%s after the %zu bytes of IDX %s header and data",
                         f->path, f->pos - end, plural(f->pos - end), end, f->kind);
    }
    return EG_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

// Reads and checks the magic (unsigned bytes, ndim dimensions) and the ndim sizes into dims.
static enum eg_status idx_read_header(struct idx_file *f, unsigned ndim, uint32_t *dims,
                                      struct eg_error *err)
{
    uint8_t raw[4 * 4];
    enum eg_status st = idx_read_exact(f, raw, 4, "magic number", err);
    if (st != EG_OK) return st;
    uint32_t magic = be32(raw);
    uint32_t want = 0x00000800u | ndim;
    if ((magic & 0xffffff00u) != 0x00000800u) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: bad magic 0x%08x for an IDX %s file, expected 0x%08x (unsigned "
                         "bytes, %u dimension%s)",
                         f->path, (unsigned)magic, f->kind, (unsigned)want, ndim, plural(ndim));
    }
    if (magic != want) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: IDX %s file has %u dimension%s (magic 0x%08x), expected %u (magic "
                         "0x%08x)",
                         f->path, f->kind, (unsigned)(magic & 0xffu), plural(magic & 0xffu),
                         (unsigned)magic, ndim, (unsigned)want);
    }
    st = idx_read_exact(f, raw, 4 * (size_t)ndim, "dimension sizes", err);
    if (st != EG_OK) return st;
    for (unsigned k = 0; k < ndim; k++)
        dims[k] = be32(raw + 4 * k);
    return EG_OK;
}

enum eg_status idx_load(const char *images_path, const char *labels_path, size_t classes,
                        struct dataset *out, struct eg_error *err)
{
    if (classes == 0) {
        return eg_errorf(err, EG_ERR_ARG, "%s: cannot load IDX labels into 0 classes", labels_path);
    }
    struct idx_file im = {0}, lb = {0};
    uint8_t *pixels = NULL, *raw_labels = NULL;
    uint32_t idims[3], ldims[1];
    size_t N = 0, H = 0, W = 0;
    enum eg_status st;

    // Headers first: the counts must agree before anything large is read.
    if ((st = idx_open(&im, images_path, "images", err)) != EG_OK) goto done;
    if ((st = idx_read_header(&im, 3, idims, err)) != EG_OK) goto done;
    N = idims[0];
    H = idims[1];
    W = idims[2];
    if (N == 0 || H == 0 || W == 0) {
        st = eg_errorf(err, EG_ERR_FORMAT,
                       "%s: IDX images file has a zero dimension (n=%zu, h=%zu, w=%zu)",
                       images_path, N, H, W);
        goto done;
    }
    // h, w <= 2^16 first, so h*w cannot overflow; then n*h*w is compared by division
    if (H > IDX_MAX_SIDE || W > IDX_MAX_SIDE || (uint64_t)H * W > IDX_MAX_IMAGE_PIXELS ||
        N > IDX_MAX_TOTAL_BYTES / (H * W)) {
        st = eg_errorf(err, EG_ERR_FORMAT,
                       "%s: IDX images file has absurd sizes n=%zu, h=%zu, w=%zu (limits: h, w "
                       "<= %u, h*w <= %u, n*h*w <= %zu bytes)",
                       images_path, N, H, W, IDX_MAX_SIDE, IDX_MAX_IMAGE_PIXELS,
                       (size_t)IDX_MAX_TOTAL_BYTES);
        goto done;
    }
    if ((st = idx_open(&lb, labels_path, "labels", err)) != EG_OK) goto done;
    if ((st = idx_read_header(&lb, 1, ldims, err)) != EG_OK) goto done;
    if (ldims[0] != N) {
        st = eg_errorf(err, EG_ERR_FORMAT,
                       "IDX files disagree: %s has %zu images but %s has %zu labels", images_path,
                       N, labels_path, (size_t)ldims[0]);
        goto done;
    }

    // Labels before pixels: they are small and a bad one fails fast.
    if ((st = idx_read_data(&lb, N, &raw_labels, err)) != EG_OK) goto done;
    if ((st = idx_expect_end(&lb, err)) != EG_OK) goto done;
    for (size_t i = 0; i < N; i++) {
        if (raw_labels[i] >= classes) {
            st = eg_errorf(err, EG_ERR_FORMAT, "%s: label %u at index %zu is out of range [0, %zu)",
                           labels_path, (unsigned)raw_labels[i], i, classes);
            goto done;
        }
    }
    if ((st = idx_read_data(&im, N * H * W, &pixels, err)) != EG_OK) goto done;
    if ((st = idx_expect_end(&im, err)) != EG_OK) goto done;

    *out = (struct dataset){
        .n = N,
        .shape = {.c = 1, .h = H, .w = W},
        .classes = classes,
        .pixels = pixels,
        .labels = eg_xmalloc_array(N, sizeof *out->labels),
        .clean_labels = eg_xmalloc_array(N, sizeof *out->clean_labels),
    };
    for (size_t i = 0; i < N; i++)
        out->labels[i] = out->clean_labels[i] = raw_labels[i];
    pixels = NULL; // now owned by *out

done:
    idx_close(&im);
    idx_close(&lb);
    free(pixels);
    free(raw_labels);
    return st;
}
