/* imagefolder.c - the image-folder loader: root/<class>/<image>.png into a struct dataset.
 *
 * Two passes. First the folders are listed and sorted (classes, then each class's PNG files),
 * so the image count is known and the dataset is allocated once. Then every PNG is decoded with
 * libpng's classic API into 8-bit interleaved rows, converted to the wanted channels (planar)
 * and resized bilinearly straight into its slot of the dataset.
 *
 * Conversion rules (the precise form of what dataset.h says):
 *   - samples are taken as stored: gAMA, cHRM, sRGB, iCCP and sBIT are ignored;
 *   - alpha is ignored, not composited: an alpha channel or a tRNS chunk is dropped and each
 *     pixel keeps its stored colour whatever its opacity (as Pillow's convert("RGB"));
 *   - 16-bit samples become round(v * 255 / 65535) (png_set_scale_16), not their high byte;
 *     1, 2 and 4-bit grey are scaled to 0..255 (value * 255 / max), palettes are looked up;
 *   - grey -> RGB repeats the value; RGB -> grey is Pillow's convert("L") bit for bit:
 *     L = (19595 R + 38470 G + 7471 B + 32768) >> 16, the ITU-R 601 weights .299/.587/.114
 *     in 16-bit fixed point (it differs from round((299 R + 587 G + 114 B) / 1000) by one on
 *     9040 of the 2^24 colours, the near-ties, e.g. (0, 0, 250) gives 28, not 29);
 *   - the channels are converted first, then the image is resized (see resize_plane).
 *
 * libpng reports errors by longjmp. Everything read_png must release after a longjmp lives in a
 * struct png_reader reached through a pointer, never in a local variable changed after setjmp,
 * so nothing is clobbered and nothing leaks. Nothing is allocated on failure; *out is written
 * last. */
#include "dataset.h"

#include <errno.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <dirent.h>
#include <sys/stat.h>

#include <png.h>

#include "core/alloc.h"

// Absurd-size guards, far above any image dataset (miniImageNet: 84 x 84) but small enough that
// a corrupt header cannot make us allocate gigabytes before the data proves to be missing.
#define IMAGEFOLDER_MAX_SIDE 65536u                   // width, height of a stored PNG
#define IMAGEFOLDER_MAX_PIXELS ((size_t)1 << 28)      // width * height of a stored PNG
#define IMAGEFOLDER_MAX_TOTAL_BYTES ((size_t)1 << 40) // n * want.c * want.h * want.w

// ---------------------------------------------------------------------------------------------
// Listing folders

// A growing array of owned strings.
struct name_list {
    char **v;
    size_t n, cap;
};

static void names_push(struct name_list *l, const char *s)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = eg_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = eg_xstrdup(s);
}

static void names_free(struct name_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct name_list){0};
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// "dir/name" in a new string (caller frees); no doubled '/' when dir already ends in one.
static char *path_join(const char *dir, const char *name)
{
    size_t nd = strlen(dir), nn = strlen(name);
    bool slash = nd > 0 && dir[nd - 1] != '/';
    char *p = eg_xmalloc(nd + slash + nn + 1);
    memcpy(p, dir, nd);
    if (slash) p[nd] = '/';
    memcpy(p + nd + slash, name, nn + 1);
    return p;
}

// True for a name ending in ".png" in any letter case (and with something before it).
static bool has_png_suffix(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcasecmp(name + n - 4, ".png") == 0;
}

enum list_what {
    LIST_DIRS,     // subdirectories: the classes of the root
    LIST_PNG_FILES // regular files named *.png: the images of a class
};

// Appends the names of dir's entries of the given kind to out, sorted by strcmp. Names that
// begin with '.' are skipped: ".", "..", and hidden entries such as ".ipynb_checkpoints" or
// macOS's "._x.png" resource forks. stat() follows symbolic links, so a linked folder or image
// counts. On error returns the status with a message naming the path; out may hold some names
// (the caller frees it either way).
static enum eg_status list_dir(const char *dir, enum list_what what, struct name_list *out,
                               struct eg_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    }
    enum eg_status st = EG_OK;
    for (;;) {
        errno = 0;
        const struct dirent *e = readdir(d);
        if (e == NULL) {
            if (errno != 0) {
                st = eg_errorf(err, EG_ERR_IO, "%s: cannot read folder: %s", dir, strerror(errno));
            }
            break;
        }
        if (e->d_name[0] == '.') continue;
        // Most files in a class folder are images; the suffix test avoids a stat for the rest.
        if (what == LIST_PNG_FILES && !has_png_suffix(e->d_name)) continue;
        char *p = path_join(dir, e->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0) {
            st = eg_errorf(err, EG_ERR_IO, "%s: cannot stat: %s", p, strerror(errno));
            free(p);
            break;
        }
        free(p);
        bool keep = what == LIST_DIRS ? S_ISDIR(sb.st_mode) : S_ISREG(sb.st_mode);
        if (keep) names_push(out, e->d_name);
    }
    closedir(d);
    if (st == EG_OK && out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_names);
    return st;
}

// ---------------------------------------------------------------------------------------------
// Decoding one PNG (libpng classic API)

// What read_png owns. Buffers grow and are reused from image to image; the caller zero-inits
// the struct and releases it with png_reader_deinit.
struct png_reader {
    FILE *fp;        // open only inside read_png
    png_structp png; // live only inside read_png
    png_infop info;
    uint8_t *buf;    // the decoded image: (h, w, channels) interleaved 8-bit
    size_t buf_cap;  // bytes
    png_bytep *rows; // (h) pointers into buf, for png_read_image
    size_t rows_cap; // entries
    bool io_error;   // the failure was an OS read error, not bad content
    char msg[256];   // libpng's (or our read callback's) error message
};

static void png_reader_deinit(struct png_reader *r)
{
    free(r->buf);
    free(r->rows);
    *r = (struct png_reader){0};
}

// libpng error callback: keeps the message and jumps back into read_png. Must not return.
static _Noreturn void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_reader *r = png_get_error_ptr(png);
    if (msg != r->msg) snprintf(r->msg, sizeof r->msg, "%s", msg);
    png_longjmp(png, 1);
}

// libpng warning callback: warnings (e.g. "iCCP: known incorrect sRGB profile") do not stop a
// load and a library must not print, so they are dropped.
static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

// libpng read callback: fread with a message that tells a truncated file from a read error
// (libpng's own callback says "Read Error" for both).
static void png_read_data(png_structp png, png_bytep data, size_t length)
{
    struct png_reader *r = png_get_io_ptr(png);
    if (fread(data, 1, length, r->fp) != length) {
        if (ferror(r->fp)) {
            r->io_error = true;
            snprintf(r->msg, sizeof r->msg, "read error: %s", strerror(errno));
        } else {
            snprintf(r->msg, sizeof r->msg, "file is truncated (unexpected end of file)");
        }
        png_error(png, r->msg);
    }
}

// The size of a decoded image in r->buf.
struct decoded_size {
    size_t h, w, ch; // ch: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
};

// Decodes the PNG at path into r->buf as 8-bit samples, (h, w, ch) interleaved: palettes are
// expanded to RGB (RGBA with tRNS), grey below 8 bits is scaled up, 16-bit is scaled down with
// rounding, interlacing is undone. Returns EG_OK and sets *sz, or EG_ERR_IO (cannot open or
// read) / EG_ERR_FORMAT (bad signature, corrupt or truncated data, too large) with a message
// naming path; *sz is untouched then. r's file and libpng structs are released either way.
static enum eg_status read_png(struct png_reader *r, const char *path, struct decoded_size *sz,
                               struct eg_error *err)
{
    r->fp = fopen(path, "rb");
    if (r->fp == NULL)
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    png_byte sig[8];
    size_t got = fread(sig, 1, sizeof sig, r->fp);
    if (got != sizeof sig || png_sig_cmp(sig, 0, sizeof sig) != 0) {
        bool io = ferror(r->fp) != 0;
        int saved_errno = errno;
        fclose(r->fp); // read-only: nothing to flush, nothing to lose
        r->fp = NULL;
        if (io) return eg_errorf(err, EG_ERR_IO, "%s: read error: %s", path, strerror(saved_errno));
        return eg_errorf(err, EG_ERR_FORMAT, "%s: not a PNG file (%s)", path,
                         got != sizeof sig ? "shorter than the 8-byte PNG signature"
                                           : "bad signature");
    }

    r->io_error = false;
    r->msg[0] = '\0';
    r->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, r, png_on_error, png_on_warning);
    // NULL only when out of memory or when png.h and the library disagree (a build bug)
    EG_ASSERT(r->png != NULL);
    r->info = png_create_info_struct(r->png);
    EG_ASSERT(r->info != NULL);
    if (setjmp(png_jmpbuf(r->png))) {
        // Reached by longjmp from png_on_error: only r, path and err are used, none changed.
        png_destroy_read_struct(&r->png, &r->info, NULL);
        fclose(r->fp);
        r->fp = NULL;
        return eg_errorf(err, r->io_error ? EG_ERR_IO : EG_ERR_FORMAT, "%s: invalid PNG: %s", path,
                         r->msg);
    }
    png_set_read_fn(r->png, r, png_read_data);
    png_set_sig_bytes(r->png, sizeof sig);
    png_set_user_limits(r->png, IMAGEFOLDER_MAX_SIDE, IMAGEFOLDER_MAX_SIDE);
    png_read_info(r->png, r->info);

    png_uint_32 w = png_get_image_width(r->png, r->info);
    png_uint_32 h = png_get_image_height(r->png, r->info);
    if ((uint64_t)w * h > IMAGEFOLDER_MAX_PIXELS) {
        snprintf(r->msg, sizeof r->msg, "%lu x %lu pixels is more than the %zu this loader reads",
                 (unsigned long)w, (unsigned long)h, IMAGEFOLDER_MAX_PIXELS);
        png_error(r->png, r->msg);
    }
    int color = png_get_color_type(r->png, r->info);
    int depth = png_get_bit_depth(r->png, r->info);
    // No png_set_tRNS_to_alpha and no png_set_strip_alpha: alpha that arrives (an alpha channel,
    // or palette tRNS, which png_set_palette_to_rgb expands) is skipped by convert_channels.
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(r->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(r->png);
    if (depth == 16) png_set_scale_16(r->png); // round(v * 255 / 65535); strip_16 truncates
    (void)png_set_interlace_handling(r->png);
    png_read_update_info(r->png, r->info);

    size_t ch = png_get_channels(r->png, r->info);
    size_t rowbytes = png_get_rowbytes(r->png, r->info);
    EG_ASSERT(png_get_bit_depth(r->png, r->info) == 8 && ch >= 1 && ch <= 4);
    EG_ASSERT(rowbytes == (size_t)w * ch);
    if (rowbytes * h > r->buf_cap) {
        r->buf_cap = rowbytes * h;
        free(r->buf); // the old contents are not needed: realloc would copy them
        r->buf = eg_xmalloc(r->buf_cap);
    }
    if (h > r->rows_cap) {
        r->rows_cap = h;
        r->rows = eg_xrealloc(r->rows, r->rows_cap * sizeof *r->rows);
    }
    for (size_t y = 0; y < h; y++)
        r->rows[y] = r->buf + y * rowbytes;
    png_read_image(r->png, r->rows);
    // Reads up to IEND: checks the end of the zlib stream and the CRCs of the last chunks, so a
    // file cut after its pixel data is an error too.
    png_read_end(r->png, NULL);

    png_destroy_read_struct(&r->png, &r->info, NULL);
    fclose(r->fp);
    r->fp = NULL;
    *sz = (struct decoded_size){.h = h, .w = w, .ch = ch};
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// Conversion and resizing

// Pillow's convert("L"): ITU-R 601 luma in 16-bit fixed point (the weights sum to 65536).
static uint8_t luma(uint8_t r, uint8_t g, uint8_t b)
{
    return (uint8_t)((19595u * r + 38470u * g + 7471u * b + 0x8000u) >> 16);
}

// dst: (c, npix) planes written, c = 1 or 3; src: (npix, ch) interleaved, ch in 1..4, where
// ch = 2 and 4 carry an alpha sample last, which is ignored.
static void convert_channels(uint8_t *dst, size_t c, const uint8_t *src, size_t ch, size_t npix)
{
    if (c == 1 && ch <= 2) {
        for (size_t p = 0; p < npix; p++)
            dst[p] = src[p * ch];
    } else if (c == 1) {
        for (size_t p = 0; p < npix; p++) {
            const uint8_t *s = src + p * ch;
            dst[p] = luma(s[0], s[1], s[2]);
        }
    } else {
        // grey repeats its single sample; RGB(A) takes samples 0, 1, 2
        size_t step = ch <= 2 ? 0 : 1;
        for (size_t k = 0; k < 3; k++) {
            uint8_t *d = dst + k * npix;
            const uint8_t *s = src + k * step;
            for (size_t p = 0; p < npix; p++)
                d[p] = s[p * ch];
        }
    }
}

// One output coordinate's source samples: value = (1 - t) * src[i0] + t * src[i1].
struct tap {
    size_t i0, i1;
    double t;
};

// taps: (out) written, for resampling an axis of `in` samples to `out` with half-pixel centres
// (PyTorch's align_corners=False): the source coordinate of output d is
// s = (d + 0.5) * in / out - 0.5, clamped to [0, in - 1], interpolated between floor(s) and the
// next sample. No antialiasing: a downscale reads at most the two nearest samples per axis.
static void axis_taps(struct tap *taps, size_t out, size_t in)
{
    double scale = (double)in / (double)out;
    for (size_t d = 0; d < out; d++) {
        double s = ((double)d + 0.5) * scale - 0.5;
        if (s < 0.0) s = 0.0;
        size_t i0 = (size_t)s;
        if (i0 >= in - 1) {
            taps[d] = (struct tap){.i0 = in - 1, .i1 = in - 1, .t = 0.0};
        } else {
            taps[d] = (struct tap){.i0 = i0, .i1 = i0 + 1, .t = s - (double)i0};
        }
    }
}

// dst: (H, W) written; src: (h, w). Bilinear with the taps ty (H) and tx (W) from axis_taps,
// rounded to the nearest integer, halves up. The sum is a convex combination, so it stays in
// [0, 255].
static void resize_plane(uint8_t *dst, size_t H, size_t W, const uint8_t *src, size_t w,
                         const struct tap *ty, const struct tap *tx)
{
    for (size_t y = 0; y < H; y++) {
        const uint8_t *r0 = src + ty[y].i0 * w;
        const uint8_t *r1 = src + ty[y].i1 * w;
        double v1 = ty[y].t, v0 = 1.0 - v1;
        for (size_t x = 0; x < W; x++) {
            const struct tap *t = &tx[x];
            double u1 = t->t, u0 = 1.0 - u1;
            double top = u0 * r0[t->i0] + u1 * r0[t->i1];
            double bottom = u0 * r1[t->i0] + u1 * r1[t->i1];
            dst[y * W + x] = (uint8_t)(v0 * top + v1 * bottom + 0.5);
        }
    }
}

// Scratch space reused across images.
struct resizer {
    uint8_t *planes;     // (c, h, w) of the current source image
    size_t planes_cap;   // bytes
    struct tap *ty, *tx; // (want.h), (want.w)
    size_t in_h, in_w;   // the source size the taps were made for (0: none yet)
};

// dst: (want.c, want.h, want.w) written from the decoded image src: (sz.h, sz.w, sz.ch).
static void convert_and_resize(struct resizer *rs, uint8_t *dst, struct shape want,
                               const uint8_t *src, struct decoded_size sz)
{
    size_t npix = sz.h * sz.w;
    if (sz.h == want.h && sz.w == want.w) {
        convert_channels(dst, want.c, src, sz.ch, npix); // same size: exact, no resampling
        return;
    }
    if (want.c * npix > rs->planes_cap) {
        rs->planes_cap = want.c * npix;
        free(rs->planes);
        rs->planes = eg_xmalloc(rs->planes_cap);
    }
    convert_channels(rs->planes, want.c, src, sz.ch, npix);
    if (sz.h != rs->in_h || sz.w != rs->in_w) {
        axis_taps(rs->ty, want.h, sz.h);
        axis_taps(rs->tx, want.w, sz.w);
        rs->in_h = sz.h;
        rs->in_w = sz.w;
    }
    size_t plane = want.h * want.w;
    for (size_t k = 0; k < want.c; k++) {
        resize_plane(dst + k * plane, want.h, want.w, rs->planes + k * npix, sz.w, rs->ty, rs->tx);
    }
}

// ---------------------------------------------------------------------------------------------
// The loader

// Lists root's classes into *classes and each class's images into files[k] (files: (classes)
// allocated here). On error the lists may be partly filled; the caller frees them either way.
static enum eg_status list_tree(const char *root, struct name_list *classes,
                                struct name_list **files, struct eg_error *err)
{
    struct stat sb;
    if (stat(root, &sb) != 0) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open image folder: %s", root, strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) {
        return eg_errorf(err, EG_ERR_IO,
                         "%s: not a directory (an image folder holds one subfolder per class)",
                         root);
    }
    enum eg_status st = list_dir(root, LIST_DIRS, classes, err);
    if (st != EG_OK) return st;
    if (classes->n == 0) {
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: no class folders in image folder (expected %s/<class>/<image>.png)",
                         root, root);
    }
    *files = eg_xcalloc(classes->n, sizeof **files);
    for (size_t k = 0; k < classes->n; k++) {
        char *dir = path_join(root, classes->v[k]);
        st = list_dir(dir, LIST_PNG_FILES, &(*files)[k], err);
        if (st == EG_OK && (*files)[k].n == 0) {
            st = eg_errorf(err, EG_ERR_FORMAT, "%s: class folder '%s' has no .png files", dir,
                           classes->v[k]);
        }
        free(dir);
        if (st != EG_OK) return st;
    }
    return EG_OK;
}

enum eg_status imagefolder_load(const char *root, struct shape want, struct dataset *out,
                                struct eg_error *err)
{
    EG_ASSERT(root != NULL && out != NULL);
    if (want.c != 1 && want.c != 3) {
        return eg_errorf(err, EG_ERR_ARG,
                         "imagefolder %s: want.c = %zu channels, expected 1 (grey) or 3 (RGB)",
                         root, want.c);
    }
    if (want.h == 0 || want.w == 0) {
        return eg_errorf(err, EG_ERR_ARG,
                         "imagefolder %s: want.h x want.w = %zu x %zu, both must be at least 1",
                         root, want.h, want.w);
    }
    if (want.h > IMAGEFOLDER_MAX_SIDE || want.w > IMAGEFOLDER_MAX_SIDE) {
        return eg_errorf(err, EG_ERR_ARG,
                         "imagefolder %s: want.h x want.w = %zu x %zu, sides must be at most %u",
                         root, want.h, want.w, IMAGEFOLDER_MAX_SIDE);
    }

    struct name_list classes = {0};
    struct name_list *files = NULL; // (classes.n) once list_tree has allocated it
    struct dataset d = {0};
    struct png_reader reader = {0};
    struct resizer rs = {0};
    enum eg_status st = list_tree(root, &classes, &files, err);
    if (st != EG_OK) goto done;

    size_t n = 0;
    for (size_t k = 0; k < classes.n; k++)
        n += files[k].n;
    size_t bytes = shape_numel(want); // <= 3 * 2^32 by the checks above
    if (n > IMAGEFOLDER_MAX_TOTAL_BYTES / bytes) {
        st = eg_errorf(err, EG_ERR_ARG,
                       "imagefolder %s: %zu images of %zu x %zu x %zu bytes exceed the %zu-byte "
                       "limit",
                       root, n, want.c, want.h, want.w, IMAGEFOLDER_MAX_TOTAL_BYTES);
        goto done;
    }
    EG_ASSERT(classes.n <= INT32_MAX);
    dataset_alloc(&d, n, want, classes.n);
    d.class_names = eg_xcalloc(classes.n, sizeof *d.class_names);
    for (size_t k = 0; k < classes.n; k++)
        d.class_names[k] = eg_xstrdup(classes.v[k]);
    rs.ty = eg_xmalloc_array(want.h, sizeof *rs.ty);
    rs.tx = eg_xmalloc_array(want.w, sizeof *rs.tx);

    size_t i = 0;
    for (size_t k = 0; k < classes.n && st == EG_OK; k++) {
        char *dir = path_join(root, classes.v[k]);
        for (size_t j = 0; j < files[k].n; j++, i++) {
            char *path = path_join(dir, files[k].v[j]);
            struct decoded_size sz;
            st = read_png(&reader, path, &sz, err);
            free(path);
            if (st != EG_OK) break;
            convert_and_resize(&rs, d.pixels + i * bytes, want, reader.buf, sz);
            d.labels[i] = (int32_t)k;
            d.clean_labels[i] = (int32_t)k;
        }
        free(dir);
    }
    if (st == EG_OK) {
        *out = d;
        d = (struct dataset){0}; // now owned by *out
    }

done:
    dataset_deinit(&d);
    png_reader_deinit(&reader);
    free(rs.planes);
    free(rs.ty);
    free(rs.tx);
    if (files != NULL) {
        for (size_t k = 0; k < classes.n; k++)
            names_free(&files[k]);
        free(files);
    }
    names_free(&classes);
    return st;
}
