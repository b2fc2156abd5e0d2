/* idx.c - the IDX loader (MNIST, Fashion-MNIST): an image file and its label file.
 *
 * Format (http://yann.lecun.com/exdb/mnist/): a big-endian magic 0x0000TTDD (TT = 0x08 for
 * unsigned bytes, DD = number of dimensions), DD big-endian uint32 sizes, then the elements
 * row-major. Images are 0x00000803 (n, h, w), labels 0x00000801 (n). Both files are read through
 * zlib's gz* functions, which read gzipped and raw files alike.
 *
 * Every byte count is checked. A file must hold exactly its header and data: short files,
 * corrupt gzip streams and trailing bytes are all errors. Data buffers grow as bytes actually
 * arrive (and are read straight into), so a header claiming billions of images costs no more
 * memory than the file really holds. Nothing leaks on failure, and *out is written last. */
#include "dataset.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/alloc.h"

// Absurd-size guards, far above any real IDX set (MNIST: 60,000 x 28 x 28) but small enough
// that n*h*w cannot overflow size_t even where it is 32 bits.
#define IDX_MAX_SIDE 65536u                      // h, w
#define IDX_MAX_IMAGE_PIXELS (1u << 24)          // h * w
#define IDX_MAX_TOTAL_BYTES ((size_t)UINT32_MAX) // n * h * w: 4 GiB

// Read buffer of zlib (input side); 256 KiB keeps the read() calls few.
#define IDX_GZ_BUFFER (256u * 1024u)
// First size of a growing data buffer (MNIST's 47 MB of pixels fit in it: one allocation).
#define IDX_FIRST_CHUNK ((size_t)64 << 20)
// Largest single gzread: its length is unsigned and its result int.
#define IDX_MAX_READ ((size_t)1 << 30)

// One open IDX file.
struct idx_file {
    const char *path;
    const char *kind; // "images" or "labels", for messages
    gzFile gz;
    size_t pos; // bytes consumed so far (header included)
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

static enum eg_status idx_open(struct idx_file *f, const char *path, const char *kind,
                               struct eg_error *err)
{
    *f = (struct idx_file){.path = path, .kind = kind};
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (f->gz == NULL) {
        // errno is 0 only when zlib itself could not allocate its state
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open IDX %s file: %s", path, kind,
                         errno != 0 ? strerror(errno) : "zlib could not allocate its state");
    }
    if (gzbuffer(f->gz, IDX_GZ_BUFFER) != 0) {
        gzclose(f->gz);
        return eg_errorf(err, EG_ERR_IO, "%s: cannot set the zlib buffer size", path);
    }
    return EG_OK;
}

static void idx_close(struct idx_file *f)
{
    if (f->gz != NULL) gzclose(f->gz); // read-only: nothing to flush, nothing to lose
    f->gz = NULL;
}

// zlib's last error on f (*zerr: its code), without the "path: " zlib puts in front.
static const char *idx_gz_message(const struct idx_file *f, int *zerr)
{
    const char *msg = gzerror(f->gz, zerr);
    size_t len = strlen(f->path);
    if (strncmp(msg, f->path, len) == 0 && msg[len] == ':' && msg[len + 1] == ' ') {
        msg += len + 2;
    }
    return msg;
}

// The message for a gzread that returned -1: an OS read error or a corrupt gzip stream.
static enum eg_status idx_read_failed(const struct idx_file *f, struct eg_error *err)
{
    int saved_errno = errno;
    int zerr = Z_OK;
    const char *zmsg = idx_gz_message(f, &zerr);
    if (zerr == Z_ERRNO) {
        return eg_errorf(err, EG_ERR_IO, "%s: read error in IDX %s file after %zu bytes: %s",
                         f->path, f->kind, f->pos, strerror(saved_errno));
    }
    return eg_errorf(err, EG_ERR_FORMAT, "%s: corrupt gzip data in IDX %s file after %zu bytes: %s",
                     f->path, f->kind, f->pos, zmsg);
}

// Reads up to len bytes into buf, stopping early only at the end of the data or on an error.
// *got: bytes read (also added to f->pos). Returns EG_OK at a clean end, else fills err.
static enum eg_status idx_read_some(struct idx_file *f, uint8_t *buf, size_t len, size_t *got,
                                    struct eg_error *err)
{
    *got = 0;
    while (*got < len) {
        size_t want = min_size(len - *got, IDX_MAX_READ);
        int r = gzread(f->gz, buf + *got, (unsigned)want);
        if (r < 0) return idx_read_failed(f, err);
        *got += (size_t)r;
        f->pos += (size_t)r;
        if ((size_t)r < want) break; // gzread is short only at the end of the data
    }
    return EG_OK;
}

// The message for data that ended after `got` of `want` bytes of `what`. A gzip stream cut
// short reads as a clean but early end, with zlib's Z_BUF_ERROR "unexpected end of file".
static enum eg_status idx_truncated(const struct idx_file *f, const char *what, size_t want,
                                    size_t got, struct eg_error *err)
{
    int zerr = Z_OK;
    const char *zmsg = idx_gz_message(f, &zerr);
    if (zerr == Z_BUF_ERROR) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: truncated IDX %s file (gzip stream: %s): expected %zu bytes of %s, "
                         "got %zu",
                         f->path, f->kind, zmsg, want, what, got);
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

// Fails unless the file ends here; counts any trailing bytes for the message. Reading on also
// makes zlib check the gzip trailer (CRC-32 and length), so a corrupt stream is caught here.
static enum eg_status idx_expect_end(struct idx_file *f, struct eg_error *err)
{
    size_t end = f->pos;
    uint8_t scratch[4096];
    for (;;) {
        int r = gzread(f->gz, scratch, sizeof scratch);
        if (r < 0) return idx_read_failed(f, err);
        if (r == 0) break;
        f->pos += (size_t)r;
    }
    int zerr = Z_OK;
    const char *zmsg = idx_gz_message(f, &zerr);
    if (zerr == Z_BUF_ERROR) { // the data was complete but the gzip trailer is cut off
        return eg_errorf(err, EG_ERR_FORMAT, "%s: truncated gzip stream in IDX %s file: %s",
                         f->path, f->kind, zmsg);
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
