/* domains.c - few-shot domains: the built-in Fashion-MNIST domains (pixel transformation, then
 * 90-degree rotation classes) and image-folder domains, each split into base/val/novel classes.
 * Every loader builds the whole domain in a local struct and copies it to *out only on success,
 * so *out is untouched on failure; a struct domain owns its three datasets and class maps. */
#include "domains.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "augment.h"
#include "core/alloc.h"
#include "io/csv.h"
#include "source.h"

static const char *const split_names[FEWSHOT__COUNT] = {"base", "val", "novel"};

const char *fewshot_split_name(enum fewshot_split s)
{
    EG_ASSERT(s < FEWSHOT__COUNT);
    return split_names[s];
}

enum fewshot_split fewshot_split_of(size_t i)
{
    if (i % 2 == 0) return FEWSHOT_BASE;
    return i % 4 == 1 ? FEWSHOT_VAL : FEWSHOT_NOVEL;
}

// ---------------------------------------------------------------------------------------------
// Shared: splitting a labelled dataset by class

// Fills dom->split[s] and dom->orig_class[s] from `all` (labels 0..all->classes-1 in the
// domain's class list) with the classes k for which split_of_class[k] == s, labels renumbered in
// increasing k, images in index order. class_names copied from names (all->classes entries).
// dom is overwritten.
static void split_by_class(const struct dataset *all, const enum fewshot_split *split_of_class,
                           char *const *names, struct domain *dom)
{
    const size_t K = all->classes, bytes = dataset_image_bytes(all);
    size_t *local = eg_xmalloc_array(K, sizeof *local); // class k's label within its split
    size_t nclass[FEWSHOT__COUNT] = {0}, nimg[FEWSHOT__COUNT] = {0};
    for (size_t k = 0; k < K; k++)
        local[k] = nclass[split_of_class[k]]++;
    for (size_t i = 0; i < all->n; i++)
        nimg[split_of_class[all->labels[i]]]++;

    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        struct dataset *d = &dom->split[s];
        dataset_alloc(d, nimg[s], all->shape, nclass[s]);
        d->class_names = eg_xcalloc(nclass[s], sizeof *d->class_names);
        dom->orig_class[s] = eg_xmalloc_array(nclass[s], sizeof *dom->orig_class[s]);
    }
    for (size_t k = 0; k < K; k++) {
        enum fewshot_split s = split_of_class[k];
        dom->split[s].class_names[local[k]] = eg_xstrdup(names[k]);
        dom->orig_class[s][local[k]] = k;
    }
    size_t fill[FEWSHOT__COUNT] = {0};
    for (size_t i = 0; i < all->n; i++) {
        size_t k = (size_t)all->labels[i];
        struct dataset *d = &dom->split[split_of_class[k]];
        size_t t = fill[split_of_class[k]]++;
        memcpy(d->pixels + t * bytes, all->pixels + i * bytes, bytes);
        d->labels[t] = d->clean_labels[t] = (int32_t)local[k];
    }
    free(local);
}

// ---------------------------------------------------------------------------------------------
// Built-in Fashion-MNIST domains

static const char *const fmnist_names[FMNIST_DOMAINS] = {
    "fmnist-plain", "fmnist-inverted", "fmnist-edges", "fmnist-blurred", "fmnist-dilated",
};

// Fashion-MNIST's ten labels, as short names usable in class names and CSV cells.
static const char *const garment_names[10] = {
    "tshirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt",   "sneaker",  "bag",   "ankleboot",
};

#define FMNIST_GARMENTS 10
#define FMNIST_ROTATIONS 4
#define FMNIST_CLASSES (FMNIST_GARMENTS * FMNIST_ROTATIONS)

const char *fmnist_domain_name(size_t d)
{
    EG_ASSERT(d < FMNIST_DOMAINS);
    return fmnist_names[d];
}

bool fmnist_domain_find(const char *name, size_t *d)
{
    for (size_t i = 0; i < FMNIST_DOMAINS; i++) {
        if (strcmp(fmnist_names[i], name) == 0) {
            *d = i;
            return true;
        }
    }
    return false;
}

// The pixel transformations of the built-in domains, on one H x W plane (src and dst distinct).
// p(y, x) reads src; the filters differ only in how they treat the image edge (see domains.h).

static void tf_invert(const uint8_t *src, uint8_t *dst, size_t H, size_t W)
{
    for (size_t i = 0; i < H * W; i++)
        dst[i] = (uint8_t)(255 - src[i]);
}

// Sobel: gx = [-1 0 1; -2 0 2; -1 0 1] (x to the right), gy its transpose (y downwards);
// |g| = sqrt(gx^2 + gy^2) <= 1443, never a tie when rounded (k + 1/2 is no square root of an
// integer). The one-pixel border, where the 3x3 window leaves the image, is 0.
static void tf_edges(const uint8_t *src, uint8_t *dst, size_t H, size_t W)
{
    memset(dst, 0, H * W);
    for (size_t y = 1; y + 1 < H; y++) {
        for (size_t x = 1; x + 1 < W; x++) {
            const uint8_t *u = src + (y - 1) * W + x, *m = src + y * W + x,
                          *b = src + (y + 1) * W + x;
            long gx = (long)(u[1] + 2 * m[1] + b[1]) - (long)(u[-1] + 2 * m[-1] + b[-1]);
            long gy = (long)(b[-1] + 2 * b[0] + b[1]) - (long)(u[-1] + 2 * u[0] + u[1]);
            double g = round(sqrt((double)(gx * gx + gy * gy)));
            dst[y * W + x] = g >= 255.0 ? 255 : (uint8_t)g;
        }
    }
}

static size_t clamp_index(size_t i, long delta, size_t n)
{
    if (delta < 0) return i == 0 ? 0 : i - 1;
    if (delta > 0) return i + 1 == n ? i : i + 1;
    return i;
}

// Binomial blur: weights [1 2 1] x [1 2 1] (sum 16) over the 3x3 window with coordinates clamped
// to the image, rounded half up: (s + 8) / 16.
static void tf_blur(const uint8_t *src, uint8_t *dst, size_t H, size_t W)
{
    static const unsigned w[3] = {1, 2, 1};
    for (size_t y = 0; y < H; y++) {
        for (size_t x = 0; x < W; x++) {
            unsigned s = 0;
            for (long dy = -1; dy <= 1; dy++) {
                size_t yy = clamp_index(y, dy, H);
                for (long dx = -1; dx <= 1; dx++) {
                    size_t xx = clamp_index(x, dx, W);
                    s += w[dy + 1] * w[dx + 1] * src[yy * W + xx];
                }
            }
            dst[y * W + x] = (uint8_t)((s + 8) / 16);
        }
    }
}

// 3x3 maximum over the pixels of the window that lie inside the image.
static void tf_dilate(const uint8_t *src, uint8_t *dst, size_t H, size_t W)
{
    for (size_t y = 0; y < H; y++) {
        for (size_t x = 0; x < W; x++) {
            uint8_t v = 0;
            for (long dy = -1; dy <= 1; dy++) {
                size_t yy = clamp_index(y, dy, H);
                for (long dx = -1; dx <= 1; dx++) {
                    size_t xx = clamp_index(x, dx, W);
                    if (src[yy * W + xx] > v) v = src[yy * W + xx];
                }
            }
            dst[y * W + x] = v;
        }
    }
}

static void fmnist_transform(size_t d, const uint8_t *src, uint8_t *dst, size_t H, size_t W)
{
    switch (d) {
    case 0:
        memcpy(dst, src, H * W);
        break;
    case 1:
        tf_invert(src, dst, H, W);
        break;
    case 2:
        tf_edges(src, dst, H, W);
        break;
    case 3:
        tf_blur(src, dst, H, W);
        break;
    default:
        tf_dilate(src, dst, H, W);
        break;
    }
}

enum eg_status domain_load_fmnist(const char *root, size_t d, struct domain *out,
                                  struct eg_error *err)
{
    EG_ASSERT(d < FMNIST_DOMAINS && out != NULL);
    if (root == NULL) root = data_source_default_root(DATA_SOURCE_FASHION_MNIST);
    char images[4096], labels[4096];
    data_idx_path(images, sizeof images, root, "train-images-idx3-ubyte");
    data_idx_path(labels, sizeof labels, root, "train-labels-idx1-ubyte");
    struct dataset full = {0};
    enum eg_status st = idx_load(images, labels, FMNIST_GARMENTS, &full, err);
    if (st != EG_OK) return st;
    const size_t H = full.shape.h, W = full.shape.w, plane = H * W;
    if (H != W) {
        dataset_deinit(&full);
        // The rotation classes need square images (a 90-degree turn of a rectangle would crop).
        return eg_errorf(err, EG_ERR_FORMAT,
                         "%s: images are %zu x %zu, the built-in domains need square images",
                         images, H, W);
    }

    // The domain's images (i % 5 == d) with their garment x rotation classes, in index order.
    size_t n = full.n / FMNIST_DOMAINS + (d < full.n % FMNIST_DOMAINS);
    struct dataset all;
    dataset_alloc(&all, n, full.shape, FMNIST_CLASSES);
    size_t seen[FMNIST_GARMENTS] = {0}; // images of each garment so far (j of the header)
    uint8_t *tmp = eg_xmalloc(plane);
    for (size_t t = 0, i = d; i < full.n; t++, i += FMNIST_DOMAINS) {
        size_t g = (size_t)full.labels[i], r = seen[g]++ % FMNIST_ROTATIONS;
        fmnist_transform(d, full.pixels + i * plane, tmp, H, W);
        augment_rotate_u8(tmp, all.pixels + t * plane, full.shape, 90.0 * (double)r);
        all.labels[t] = all.clean_labels[t] = (int32_t)(FMNIST_ROTATIONS * g + r);
    }
    free(tmp);
    dataset_deinit(&full);

    enum fewshot_split split_of_class[FMNIST_CLASSES];
    char *names[FMNIST_CLASSES];
    for (size_t k = 0; k < FMNIST_CLASSES; k++) {
        size_t g = k / FMNIST_ROTATIONS, r = k % FMNIST_ROTATIONS;
        split_of_class[k] = fewshot_split_of(g);
        char buf[64];
        snprintf(buf, sizeof buf, "%s/rot%zu", garment_names[g], 90 * r);
        names[k] = eg_xstrdup(buf);
    }
    struct domain dom = {0};
    snprintf(dom.name, sizeof dom.name, "%s", fmnist_names[d]);
    split_by_class(&all, split_of_class, names, &dom);
    for (size_t k = 0; k < FMNIST_CLASSES; k++)
        free(names[k]);
    dataset_deinit(&all);
    *out = dom;
    return EG_OK;
}

// ---------------------------------------------------------------------------------------------
// Image-folder domains

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// root/base, root/val and root/novel, each its own image folder.
static enum eg_status load_split_folders(const char *root, struct shape image, struct domain *dom,
                                         struct eg_error *err)
{
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, split_names[s]);
        enum eg_status st = imagefolder_load(dir, image, &dom->split[s], err);
        if (st != EG_OK) return st;
        size_t K = dom->split[s].classes;
        dom->orig_class[s] = eg_xmalloc_array(K, sizeof *dom->orig_class[s]);
        for (size_t k = 0; k < K; k++)
            dom->orig_class[s][k] = k;
    }
    return EG_OK;
}

// root is one image folder; its classes are split by fewshot_split_of.
static enum eg_status load_one_folder(const char *root, struct shape image, struct domain *dom,
                                      struct eg_error *err)
{
    struct dataset all = {0};
    enum eg_status st = imagefolder_load(root, image, &all, err);
    if (st != EG_OK) return st;
    if (all.classes < 4) {
        // Class 3 is the first novel class (class 1 the first val one).
        st = eg_errorf(err, EG_ERR_FORMAT,
                       "%s: %zu class folder%s leave the %s split with no class (a domain "
                       "without base/, val/ and novel/ folders needs at least 4 classes)",
                       root, all.classes, all.classes == 1 ? "" : "s",
                       all.classes < 2 ? "val" : "novel");
        dataset_deinit(&all);
        return st;
    }
    enum fewshot_split *split_of_class = eg_xmalloc_array(all.classes, sizeof *split_of_class);
    for (size_t k = 0; k < all.classes; k++)
        split_of_class[k] = fewshot_split_of(k);
    split_by_class(&all, split_of_class, all.class_names, dom);
    free(split_of_class);
    dataset_deinit(&all);
    return EG_OK;
}

enum eg_status domain_load_folder(const char *root, const char *name, struct shape image,
                                  struct domain *out, struct eg_error *err)
{
    EG_ASSERT(root != NULL && name != NULL && out != NULL);
    struct stat sb;
    if (stat(root, &sb) != 0) {
        return eg_errorf(err, EG_ERR_IO, "%s: cannot open domain folder: %s", root,
                         strerror(errno));
    }
    if (!S_ISDIR(sb.st_mode)) {
        return eg_errorf(err, EG_ERR_IO,
                         "%s: not a directory (a domain is a folder of class "
                         "folders, or of base/, val/ and novel/)",
                         root);
    }
    bool present[FEWSHOT__COUNT];
    size_t npresent = 0;
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, split_names[s]);
        present[s] = is_dir(dir);
        npresent += present[s];
    }
    if (npresent > 0 && npresent < FEWSHOT__COUNT) {
        size_t have = 0, miss = 0;
        for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
            if (present[s]) have = s;
        }
        while (present[miss])
            miss++;
        return eg_errorf(err, EG_ERR_IO,
                         "%s/%s: split folder missing (%s/%s exists; a domain has all of base/, "
                         "val/ and novel/ or none of them)",
                         root, split_names[miss], root, split_names[have]);
    }

    struct domain dom = {0};
    snprintf(dom.name, sizeof dom.name, "%s", name);
    enum eg_status st = npresent == FEWSHOT__COUNT ? load_split_folders(root, image, &dom, err)
                                                   : load_one_folder(root, image, &dom, err);
    if (st != EG_OK) {
        domain_deinit(&dom);
        return st;
    }
    *out = dom;
    return EG_OK;
}

void domain_deinit(struct domain *d)
{
    if (d == NULL) return;
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        dataset_deinit(&d->split[s]);
        free(d->orig_class[s]);
    }
    *d = (struct domain){0};
}

// ---------------------------------------------------------------------------------------------
// The splits file

// buf = s with the characters a CSV cell may not hold (',', '"', CR, LF) replaced by '_',
// truncated to cap - 1 bytes.
static const char *plain_cell(char *buf, size_t cap, const char *s)
{
    snprintf(buf, cap, "%s", s);
    for (char *p = buf; *p != '\0'; p++) {
        if (*p == ',' || *p == '"' || *p == '\r' || *p == '\n') *p = '_';
    }
    return buf;
}

enum eg_status domains_write_splits(const char *path, const struct domain *d,
                                    const char *const *roles, size_t nd, struct eg_error *err)
{
    EG_ASSERT(path != NULL && (nd == 0 || (d != NULL && roles != NULL)));
    static const char *const cols[] = {"domain",     "role", "split", "class",
                                       "orig_class", "name", "images"};
    const size_t ncols = sizeof cols / sizeof cols[0];
    size_t len = strlen(path) + 5;
    char *tmp = eg_xmalloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    struct csv *f = NULL;
    enum eg_status st = csv_create(tmp, cols, ncols, &f, err);
    if (st != EG_OK) {
        free(tmp);
        return st;
    }
    for (size_t i = 0; st == EG_OK && i < nd; i++) {
        for (size_t s = 0; st == EG_OK && s < FEWSHOT__COUNT; s++) {
            const struct dataset *ds = &d[i].split[s];
            size_t *counts = eg_xmalloc_array(ds->classes, sizeof *counts);
            dataset_class_counts(ds, counts);
            for (size_t k = 0; st == EG_OK && k < ds->classes; k++) {
                char dom[DOMAIN_NAME_MAX], role[256], name[1024], cls[32], orig[32], imgs[32];
                snprintf(cls, sizeof cls, "%zu", k);
                snprintf(orig, sizeof orig, "%zu", d[i].orig_class[s][k]);
                snprintf(imgs, sizeof imgs, "%zu", counts[k]);
                const char *row[] = {
                    plain_cell(dom, sizeof dom, d[i].name),
                    plain_cell(role, sizeof role, roles[i]),
                    split_names[s],
                    cls,
                    orig,
                    plain_cell(name, sizeof name,
                               ds->class_names != NULL ? ds->class_names[k] : ""),
                    imgs,
                };
                st = csv_row(f, row, err);
            }
            free(counts);
        }
    }
    if (st == EG_OK) {
        st = csv_close(f, err);
    } else {
        struct eg_error ignored;
        csv_close(f, &ignored);
    }
    if (st == EG_OK && rename(tmp, path) != 0) {
        st = eg_errorf(err, EG_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    }
    if (st != EG_OK) remove(tmp);
    free(tmp);
    return st;
}
