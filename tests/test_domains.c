/* test_domains.c - few-shot domains: the split rule, the built-in Fashion-MNIST domains (pixel
 * transformations by hand on a 5 x 5 image, the i % 5 membership and the rotation classes on
 * small IDX fixtures, then counts, garments and novel-only episodes on the real files),
 * image-folder domains from generated PNGs with every error path (status, a message naming the
 * path, *out untouched), the splits CSV, and episode_images' layout.
 *
 * Fixtures (raw IDX files, 8-bit grey PNGs written with libpng) go to a fresh temporary folder
 * per test (e2e_dir: helpers.h's e2e_setup, removed by e2e_teardown). The real Fashion-MNIST
 * tests skip when its files are not installed. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/domains.h"
#include "data/episode.h"
#include "helpers.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

// ---------------------------------------------------------------------------------------------
// fixtures

TestSuite(domains, .init = e2e_setup, .fini = e2e_teardown);


static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

// Raw (not gzipped) training IDX files in e2e_dir: n images of h x w pixels, and n labels.
static void write_idx(size_t n, size_t h, size_t w, const uint8_t *pixels, const uint8_t *labels)
{
    uint8_t *img = eg_xmalloc(16 + n * h * w);
    put_be32(img, 0x00000803);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, (uint32_t)h);
    put_be32(img + 12, (uint32_t)w);
    memcpy(img + 16, pixels, n * h * w);
    e2e_write_bytes("train-images-idx3-ubyte", img, 16 + n * h * w);
    free(img);
    uint8_t *lab = eg_xmalloc(8 + n);
    put_be32(lab, 0x00000801);
    put_be32(lab + 4, (uint32_t)n);
    memcpy(lab + 8, labels, n);
    e2e_write_bytes("train-labels-idx1-ubyte", lab, 8 + n);
    free(lab);
}

// An 8-bit grey PNG of h x w pixels at e2e_dir/rel.
static void write_grey_png(const char *rel, size_t h, size_t w, const uint8_t *pix)
{
    png_write_grey(e2e_path(rel), h, w, pix);
}

// A 4 x 4 PNG of one grey value.
static void write_flat_png(const char *rel, uint8_t v)
{
    uint8_t pix[16];
    memset(pix, v, sizeof pix);
    write_grey_png(rel, 4, 4, pix);
}

// dir/<class>/ for each class of a folder domain, with `per` flat PNGs; image t of class k has
// grey value value0 + 10 k + t.
static void make_classes(const char *dir, const char *const *classes, size_t n, size_t per,
                         uint8_t value0)
{
    char rel[256];
    for (size_t k = 0; k < n; k++) {
        snprintf(rel, sizeof rel, "%s%s%s", dir, dir[0] ? "/" : "", classes[k]);
        e2e_mkdir(rel);
        for (size_t t = 0; t < per; t++) {
            char file[300];
            snprintf(file, sizeof file, "%s/img%zu.png", rel, t);
            write_flat_png(file, (uint8_t)(value0 + 10 * k + t));
        }
    }
}

static const struct shape grey4 = {1, 4, 4};

// A struct domain filled with a byte pattern, to check that a failing loader leaves it alone.
static void poison(struct domain *d)
{
    memset(d, 0xA5, sizeof *d);
}

static bool is_poisoned(const struct domain *d)
{
    struct domain ref;
    poison(&ref);
    return memcmp(d, &ref, sizeof ref) == 0;
}

static bool contains(const char *s, const char *part)
{
    return strstr(s, part) != NULL;
}

// ---------------------------------------------------------------------------------------------
// the split rule and names

Test(domains, split_rule_is_even_base_one_mod_four_val_three_mod_four_novel)
{
    const enum fewshot_split want[8] = {FEWSHOT_BASE, FEWSHOT_VAL, FEWSHOT_BASE, FEWSHOT_NOVEL,
                                        FEWSHOT_BASE, FEWSHOT_VAL, FEWSHOT_BASE, FEWSHOT_NOVEL};
    for (size_t i = 0; i < 64; i++)
        cr_assert(eq(int, (int)fewshot_split_of(i), (int)want[i % 8]), "class %zu", i);
    // The paper's class counts: Cars 196, Places 365, Plantae 200.
    const size_t total[3] = {196, 365, 200},
                 split[3][3] = {{98, 49, 49}, {183, 91, 91}, {100, 50, 50}};
    for (size_t t = 0; t < 3; t++) {
        size_t got[FEWSHOT__COUNT] = {0};
        for (size_t i = 0; i < total[t]; i++)
            got[fewshot_split_of(i)]++;
        for (size_t s = 0; s < FEWSHOT__COUNT; s++)
            cr_assert(eq(sz, got[s], split[t][s]), "%zu classes, split %zu", total[t], s);
    }
    cr_assert(strcmp(fewshot_split_name(FEWSHOT_BASE), "base") == 0);
    cr_assert(strcmp(fewshot_split_name(FEWSHOT_VAL), "val") == 0);
    cr_assert(strcmp(fewshot_split_name(FEWSHOT_NOVEL), "novel") == 0);
}

Test(domains, builtin_names_round_trip)
{
    const char *want[FMNIST_DOMAINS] = {"fmnist-plain", "fmnist-inverted", "fmnist-edges",
                                        "fmnist-blurred", "fmnist-dilated"};
    for (size_t d = 0; d < FMNIST_DOMAINS; d++) {
        cr_assert(strcmp(fmnist_domain_name(d), want[d]) == 0);
        size_t got = 99;
        cr_assert(fmnist_domain_find(want[d], &got));
        cr_assert(eq(sz, got, d));
    }
    size_t untouched = 7;
    cr_assert(fmnist_domain_find("fmnist", &untouched) == false);
    cr_assert(fmnist_domain_find("cub", &untouched) == false);
    cr_assert(eq(sz, untouched, 7));
}

// ---------------------------------------------------------------------------------------------
// built-in domains on IDX fixtures

// The 5 x 5 test image: 80 in the top-left corner, 160 in the centre, 8 in the bottom-right.
static const uint8_t pattern[25] = {
    80, 0, 0,   0, 0, //
    0,  0, 0,   0, 0, //
    0,  0, 160, 0, 0, //
    0,  0, 0,   0, 0, //
    0,  0, 0,   0, 8,
};

// Loads built-in domain d from e2e_dir and asserts success.
static void load_fixture_domain(size_t d, struct domain *dom)
{
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_fmnist(e2e_dir, d, dom, &err), EG_OK), "%s", err.msg);
}

Test(domains, each_transformation_gives_the_hand_computed_image)
{
    // Five copies of the pattern, all t-shirts: domain d holds image d alone, as the first
    // t-shirt (rotation 0), so its only image is the transformed pattern, unrotated.
    uint8_t pixels[5 * 25], labels[5] = {0};
    for (size_t i = 0; i < 5; i++)
        memcpy(pixels + i * 25, pattern, 25);
    write_idx(5, 5, 5, pixels, labels);
    // Computed by hand (see domains.h for each filter's edge rule).
    static const uint8_t want[FMNIST_DOMAINS][25] = {
        {80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8},
        // 255 - v
        {175, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 95,
         255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 247},
        // Sobel: e.g. (1,1): gx = gy = 160 - 80, |g| = 80 sqrt 2 = 113.1; (3,3): gx = gy = 8 - 160,
        // 152 sqrt 2 = 214.96; (1,2): gy = 2 * 160 = 320, clipped to 255; border 0.
        {0, 0,   0,   0,   0, //
         0, 113, 255, 226, 0, //
         0, 255, 0,   255, 0, //
         0, 226, 255, 215, 0, //
         0, 0,   0,   0,   0},
        // Blur: (0,0): 80 * 9 (clamped rows and columns) / 16 = 45; (3,3): (160 + 8 + 8) / 16 =
        // 11 (10.5 rounds up); (4,4): (8 * 9 + 8) / 16 = 5 (4.5 up); (3,4): (8 * 3 + 8) / 16 = 2.
        {45, 15, 0,  0,  0, //
         15, 15, 20, 10, 0, //
         0,  20, 40, 20, 0, //
         0,  10, 20, 11, 2, //
         0,  0,  0,  2,  5},
        // 3x3 maximum.
        {80, 80,  0,   0,   0, //
         80, 160, 160, 160, 0, //
         0,  160, 160, 160, 0, //
         0,  160, 160, 160, 8, //
         0,  0,   0,   8,   8},
    };
    for (size_t d = 0; d < FMNIST_DOMAINS; d++) {
        struct domain dom;
        load_fixture_domain(d, &dom);
        cr_assert(strcmp(dom.name, fmnist_domain_name(d)) == 0, "%s", dom.name);
        const struct dataset *b = &dom.split[FEWSHOT_BASE];
        cr_assert(eq(sz, b->n, 1), "domain %zu", d);
        cr_assert(eq(sz, dom.split[FEWSHOT_VAL].n, 0));
        cr_assert(eq(sz, dom.split[FEWSHOT_NOVEL].n, 0));
        cr_assert(b->shape.c == 1 && b->shape.h == 5 && b->shape.w == 5);
        cr_assert(eq(i32, b->labels[0], 0));
        cr_assert(eq(sz, dom.orig_class[FEWSHOT_BASE][0], 0));
        for (size_t p = 0; p < 25; p++) {
            cr_assert(eq(u8, b->pixels[p], want[d][p]), "domain %s, pixel (%zu, %zu)", dom.name,
                      p / 5, p % 5);
        }
        domain_deinit(&dom);
    }
}

// 250 images of 5 x 5: image i has garment (i / 5) % 10, every pixel i except a 255 marker in
// the top-left corner. Each domain gets 50 images, 5 of each garment.
static void write_numbered_fixture(uint8_t *labels)
{
    uint8_t *pixels = eg_xmalloc(250 * 25);
    for (size_t i = 0; i < 250; i++) {
        memset(pixels + i * 25, (int)i, 25);
        pixels[i * 25] = 255;
        labels[i] = (uint8_t)((i / 5) % 10);
    }
    write_idx(250, 5, 5, pixels, labels);
    free(pixels);
}

Test(domains, builtin_domain_owns_every_fifth_image_in_garment_rotation_classes)
{
    uint8_t labels[250];
    write_numbered_fixture(labels);
    for (size_t d = 0; d < FMNIST_DOMAINS; d++) {
        struct domain dom;
        load_fixture_domain(d, &dom);
        cr_assert(eq(sz, dom.split[FEWSHOT_BASE].classes, 20));
        cr_assert(eq(sz, dom.split[FEWSHOT_VAL].classes, 12));
        cr_assert(eq(sz, dom.split[FEWSHOT_NOVEL].classes, 8));
        // 5 images per garment: base 5 garments, val 3, novel 2.
        cr_assert(eq(sz, dom.split[FEWSHOT_BASE].n, 25));
        cr_assert(eq(sz, dom.split[FEWSHOT_VAL].n, 15));
        cr_assert(eq(sz, dom.split[FEWSHOT_NOVEL].n, 10));

        // The expected walk: the domain's images i = d, d + 5, ... in index order, each with
        // its rank j among the domain's images of its garment.
        size_t rank[10] = {0}, next[FEWSHOT__COUNT] = {0};
        for (size_t i = d; i < 250; i += 5) {
            size_t g = labels[i], j = rank[g]++, cls = 4 * g + j % 4;
            enum fewshot_split s = fewshot_split_of(g);
            const struct dataset *ds = &dom.split[s];
            size_t t = next[s]++;
            cr_assert(lt(sz, t, ds->n));
            size_t y = (size_t)ds->labels[t];
            cr_assert(eq(i32, ds->clean_labels[t], ds->labels[t]));
            cr_assert(eq(sz, dom.orig_class[s][y], cls), "domain %zu image %zu", d, i);
            char name[32];
            snprintf(name, sizeof name, "/rot%zu", 90 * (j % 4));
            cr_assert(contains(ds->class_names[y], name), "%s", ds->class_names[y]);
            // The centre pixel keeps the image number under every filter but Sobel (flat
            // interior: 0) and inversion.
            uint8_t centre = ds->pixels[t * 25 + 12];
            uint8_t want = d == 1 ? (uint8_t)(255 - i) : d == 2 ? 0 : (uint8_t)i;
            cr_assert(eq(u8, centre, want), "domain %zu, image %zu", d, i);
        }
        for (size_t s = 0; s < FEWSHOT__COUNT; s++)
            cr_assert(eq(sz, next[s], dom.split[s].n));
        domain_deinit(&dom);
    }
}

Test(domains, rotation_classes_turn_images_counter_clockwise)
{
    uint8_t labels[250];
    write_numbered_fixture(labels);
    struct domain dom;
    load_fixture_domain(0, &dom);
    // Garment 0 (t-shirt) is base classes 0..3 = rot0, rot90, rot180, rot270. Counter-clockwise
    // turns move the top-left marker to the bottom-left, bottom-right, then top-right corner.
    const size_t corner[4] = {0, 20, 24, 4};
    const struct dataset *b = &dom.split[FEWSHOT_BASE];
    const char *names[4] = {"tshirt/rot0", "tshirt/rot90", "tshirt/rot180", "tshirt/rot270"};
    size_t found = 0;
    for (size_t t = 0; t < b->n; t++) {
        size_t y = (size_t)b->labels[t];
        if (y >= 4) continue;
        cr_assert(strcmp(b->class_names[y], names[y]) == 0, "%s", b->class_names[y]);
        for (size_t p = 0; p < 25; p++) {
            if (p == corner[y]) {
                cr_assert(eq(u8, b->pixels[t * 25 + p], 255), "rot%zu", 90 * y);
            } else {
                cr_assert(ne(u8, b->pixels[t * 25 + p], 255), "rot%zu, pixel %zu", 90 * y, p);
            }
        }
        found++;
    }
    cr_assert(eq(sz, found, 5)); // t-shirts 0..4 of the domain: rotations 0, 90, 180, 270, 0
    domain_deinit(&dom);
}

Test(domains, builtin_errors_name_the_file_and_leave_out_untouched)
{
    struct domain dom;
    poison(&dom);
    struct eg_error err = {0};
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nowhere", e2e_dir);
    cr_assert(eq(int, domain_load_fmnist(missing, 0, &dom, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, missing), "%s", err.msg);
    cr_assert(contains(err.msg, "train-images-idx3-ubyte"), "%s", err.msg);
    cr_assert(is_poisoned(&dom));

    // Rotation classes need square images.
    uint8_t pixels[5 * 6] = {0}, labels[1] = {0};
    write_idx(1, 5, 6, pixels, labels);
    cr_assert(eq(int, domain_load_fmnist(e2e_dir, 0, &dom, &err), EG_ERR_FORMAT));
    cr_assert(contains(err.msg, e2e_path("train-images-idx3-ubyte")), "%s", err.msg);
    cr_assert(contains(err.msg, "5 x 6"), "%s", err.msg);
    cr_assert(is_poisoned(&dom));

    // A label outside Fashion-MNIST's ten garments.
    uint8_t bad_label[1] = {10};
    write_idx(1, 5, 5, pixels, bad_label);
    cr_assert(eq(int, domain_load_fmnist(e2e_dir, 0, &dom, &err), EG_ERR_FORMAT));
    cr_assert(contains(err.msg, e2e_dir), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
}

Test(domains, deinit_is_null_safe_and_zeroes)
{
    domain_deinit(NULL);
    struct domain dom = {0};
    domain_deinit(&dom);
    uint8_t pixels[5 * 25] = {0}, labels[5] = {0, 3, 5, 7, 9};
    write_idx(5, 5, 5, pixels, labels);
    load_fixture_domain(0, &dom);
    domain_deinit(&dom);
    cr_assert(dom.split[FEWSHOT_BASE].pixels == NULL && dom.orig_class[FEWSHOT_BASE] == NULL);
    cr_assert(eq(chr, dom.name[0], '\0'));
    domain_deinit(&dom);
}

// ---------------------------------------------------------------------------------------------
// built-in domains on the real Fashion-MNIST training set

static void require_fmnist(void)
{
    struct stat st;
    if (stat(FMNIST_DIR "/train-images-idx3-ubyte.gz", &st) != 0 &&
        stat(FMNIST_DIR "/train-images-idx3-ubyte", &st) != 0) {
        cr_skip_test("Fashion-MNIST is not installed in " FMNIST_DIR);
    }
}

// The raw training set (labels and images) from FMNIST_DIR.
static void load_raw(struct dataset *raw)
{
    struct stat st;
    bool gz = stat(FMNIST_DIR "/train-images-idx3-ubyte.gz", &st) == 0;
    struct eg_error err = {0};
    cr_assert(eq(int,
                 idx_load(gz ? FMNIST_DIR "/train-images-idx3-ubyte.gz"
                             : FMNIST_DIR "/train-images-idx3-ubyte",
                          gz ? FMNIST_DIR "/train-labels-idx1-ubyte.gz"
                             : FMNIST_DIR "/train-labels-idx1-ubyte",
                          10, raw, &err),
                 EG_OK),
              "%s", err.msg);
}

Test(domains, fmnist_domains_have_the_expected_counts, .timeout = 600)
{
    require_fmnist();
    struct dataset raw;
    load_raw(&raw);
    cr_assert(eq(sz, raw.n, 60000));
    // Images per split, counted from the label file independently (i % 5 == d, garments split
    // by the rule); each domain has 12,000 images.
    const size_t want[FMNIST_DOMAINS][FEWSHOT__COUNT] = {
        {6146, 3523, 2331}, {5958, 3674, 2368}, {5971, 3611, 2418},
        {5950, 3600, 2450}, {5975, 3592, 2433},
    };
    size_t smallest = SIZE_MAX, largest = 0;
    for (size_t d = 0; d < FMNIST_DOMAINS; d++) {
        struct domain dom;
        struct eg_error err = {0};
        cr_assert(eq(int, domain_load_fmnist(NULL, d, &dom, &err), EG_OK), "%s", err.msg);
        size_t garment[10] = {0};
        for (size_t i = d; i < raw.n; i += 5)
            garment[raw.labels[i]]++;
        const size_t classes[FEWSHOT__COUNT] = {20, 12, 8};
        size_t total = 0;
        for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
            const struct dataset *ds = &dom.split[s];
            cr_assert(eq(sz, ds->n, want[d][s]), "domain %zu split %zu", d, s);
            cr_assert(eq(sz, ds->classes, classes[s]));
            cr_assert(ds->shape.c == 1 && ds->shape.h == 28 && ds->shape.w == 28);
            total += ds->n;
            size_t counts[20];
            dataset_class_counts(ds, counts);
            for (size_t k = 0; k < ds->classes; k++) {
                size_t c = dom.orig_class[s][k], g = c / 4, r = c % 4;
                // Rotation r gets the garment's images j with j % 4 == r: ceil((n_g - r) / 4).
                cr_assert(eq(sz, counts[k], (garment[g] - r + 3) / 4), "%s", ds->class_names[k]);
                if (k > 0) cr_assert(gt(sz, c, dom.orig_class[s][k - 1]));
                if (counts[k] < smallest) smallest = counts[k];
                if (counts[k] > largest) largest = counts[k];
            }
        }
        cr_assert(eq(sz, total, 12000));
        // The domain's first image is training image d, the first of its garment (rotation 0).
        const struct dataset *first = &dom.split[fewshot_split_of((size_t)raw.labels[d])];
        for (size_t p = 0; p < 784 && d <= 1; p++) {
            uint8_t v = raw.pixels[d * 784 + p];
            cr_assert(eq(u8, first->pixels[p], d == 0 ? v : (uint8_t)(255 - v)), "pixel %zu", p);
        }
        domain_deinit(&dom);
    }
    cr_assert(eq(sz, smallest, 289));
    cr_assert(eq(sz, largest, 317));
    dataset_deinit(&raw);
}

Test(domains, fmnist_base_val_and_novel_never_share_a_garment, .timeout = 600)
{
    require_fmnist();
    struct domain dom;
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_fmnist(NULL, 2, &dom, &err), EG_OK), "%s", err.msg);
    const char *garments[10] = {"tshirt", "trouser", "pullover", "dress", "coat",
                                "sandal", "shirt",   "sneaker",  "bag",   "ankleboot"};
    int owner[10];
    for (size_t g = 0; g < 10; g++)
        owner[g] = -1;
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        const struct dataset *ds = &dom.split[s];
        for (size_t k = 0; k < ds->classes; k++) {
            size_t c = dom.orig_class[s][k], g = c / 4;
            cr_assert(owner[g] == -1 || owner[g] == (int)s, "garment %zu in two splits", g);
            owner[g] = (int)s;
            char name[32];
            snprintf(name, sizeof name, "%s/rot%zu", garments[g], 90 * (c % 4));
            cr_assert(strcmp(ds->class_names[k], name) == 0, "%s", ds->class_names[k]);
        }
    }
    const int want[10] = {FEWSHOT_BASE, FEWSHOT_VAL,  FEWSHOT_BASE,  FEWSHOT_NOVEL, FEWSHOT_BASE,
                          FEWSHOT_VAL,  FEWSHOT_BASE, FEWSHOT_NOVEL, FEWSHOT_BASE,  FEWSHOT_VAL};
    for (size_t g = 0; g < 10; g++)
        cr_assert(eq(int, owner[g], want[g]), "garment %zu", g);
    domain_deinit(&dom);
}

Test(domains, fmnist_novel_episodes_hold_only_novel_images, .timeout = 600)
{
    require_fmnist();
    struct domain dom;
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_fmnist(NULL, 4, &dom, &err), EG_OK), "%s", err.msg);
    const struct dataset *nov = &dom.split[FEWSHOT_NOVEL];
    struct class_index ci;
    class_index_build(&ci, nov);
    struct rng r;
    rng_seed(&r, 3);
    for (int rep = 0; rep < 200; rep++) {
        struct episode ep;
        cr_assert(eq(int, episode_sample(&ci, 5, 5, 15, 4, &r, &ep, &err), EG_OK), "%s", err.msg);
        for (size_t t = 0; t < 5 * 20; t++) {
            size_t i = t < 25 ? ep.support[t] : ep.query[t - 25];
            cr_assert(lt(sz, i, nov->n));
            size_t y = (size_t)nov->labels[i], g = dom.orig_class[FEWSHOT_NOVEL][y] / 4;
            cr_assert(g == 3 || g == 7, "garment %zu in a novel episode", g);
            const char *name = nov->class_names[y];
            cr_assert(strncmp(name, "dress/", 6) == 0 || strncmp(name, "sneaker/", 8) == 0, "%s",
                      name);
        }
        episode_deinit(&ep);
    }
    class_index_deinit(&ci);
    domain_deinit(&dom);
}

// ---------------------------------------------------------------------------------------------
// image-folder domains

Test(domains, folder_with_split_folders_loads_each_folder_as_it_is)
{
    e2e_mkdir("d");
    e2e_mkdir("d/base");
    e2e_mkdir("d/val");
    e2e_mkdir("d/novel");
    const char *base[2] = {"ant", "bee"}, *val[1] = {"cat"}, *novel[2] = {"dog", "eel"};
    make_classes("d/base", base, 2, 2, 0);
    make_classes("d/val", val, 1, 3, 100);
    make_classes("d/novel", novel, 2, 1, 200);
    struct domain dom;
    struct eg_error err = {0};
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert(eq(int, domain_load_folder(e2e_path("d"), longname, grey4, &dom, &err), EG_OK), "%s",
              err.msg);
    cr_assert(eq(sz, strlen(dom.name), DOMAIN_NAME_MAX - 1)); // truncated
    const size_t classes[3] = {2, 1, 2}, n[3] = {4, 3, 2};
    const char *const *names[3] = {base, val, novel};
    const uint8_t value0[3] = {0, 100, 200};
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        const struct dataset *ds = &dom.split[s];
        cr_assert(eq(sz, ds->classes, classes[s]));
        cr_assert(eq(sz, ds->n, n[s]));
        for (size_t k = 0; k < ds->classes; k++) {
            cr_assert(strcmp(ds->class_names[k], names[s][k]) == 0);
            cr_assert(eq(sz, dom.orig_class[s][k], k));
        }
        for (size_t i = 0; i < ds->n; i++) {
            size_t per = n[s] / classes[s], k = i / per, t = i % per;
            cr_assert(eq(i32, ds->labels[i], (int32_t)k));
            cr_assert(eq(u8, ds->pixels[i * 16 + 5], (uint8_t)(value0[s] + 10 * k + t)));
        }
    }
    domain_deinit(&dom);

    // The asked shape: 2 x 2 RGB from the 4 x 4 grey files.
    cr_assert(eq(int, domain_load_folder(e2e_path("d"), "d", (struct shape){3, 2, 2}, &dom, &err), EG_OK),
              "%s", err.msg);
    cr_assert(dom.split[FEWSHOT_NOVEL].shape.c == 3 && dom.split[FEWSHOT_NOVEL].shape.h == 2);
    cr_assert(eq(u8, dom.split[FEWSHOT_NOVEL].pixels[23], 210)); // eel: last value of image 1
    domain_deinit(&dom);
}

Test(domains, folder_without_split_folders_splits_classes_by_the_rule)
{
    e2e_mkdir("flat");
    const char *classes[8] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"};
    make_classes("flat", classes, 8, 2, 0);
    struct domain dom;
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_folder(e2e_path("flat"), "flat", grey4, &dom, &err), EG_OK), "%s",
              err.msg);
    cr_assert(strcmp(dom.name, "flat") == 0);
    const size_t orig[3][4] = {{0, 2, 4, 6}, {1, 5}, {3, 7}}, count[3] = {4, 2, 2};
    for (size_t s = 0; s < FEWSHOT__COUNT; s++) {
        const struct dataset *ds = &dom.split[s];
        cr_assert(eq(sz, ds->classes, count[s]), "split %zu", s);
        cr_assert(eq(sz, ds->n, 2 * count[s]));
        for (size_t k = 0; k < ds->classes; k++) {
            cr_assert(eq(sz, dom.orig_class[s][k], orig[s][k]));
            cr_assert(strcmp(ds->class_names[k], classes[orig[s][k]]) == 0);
        }
        for (size_t i = 0; i < ds->n; i++) {
            size_t k = i / 2, t = i % 2;
            cr_assert(eq(i32, ds->labels[i], (int32_t)k));
            cr_assert(eq(i32, ds->clean_labels[i], (int32_t)k));
            for (size_t p = 0; p < 16; p++)
                cr_assert(eq(u8, ds->pixels[i * 16 + p], (uint8_t)(10 * orig[s][k] + t)));
        }
    }
    domain_deinit(&dom);
}

Test(domains, folder_missine2e_dir_is_an_io_error_naming_it)
{
    struct domain dom;
    poison(&dom);
    struct eg_error err = {0};
    const char *root = e2e_path("absent");
    cr_assert(eq(int, domain_load_folder(root, "x", grey4, &dom, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, root), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
    // A file where the folder should be.
    e2e_write_bytes("file", "x", 1);
    cr_assert(eq(int, domain_load_folder(e2e_path("file"), "x", grey4, &dom, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, e2e_path("file")), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
}

Test(domains, folder_with_only_some_split_folders_names_the_missing_one)
{
    e2e_mkdir("d");
    e2e_mkdir("d/base");
    const char *cls[1] = {"a"};
    make_classes("d/base", cls, 1, 1, 0);
    struct domain dom;
    poison(&dom);
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_folder(e2e_path("d"), "d", grey4, &dom, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, e2e_path("d/val")), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
    e2e_mkdir("d/val");
    make_classes("d/val", cls, 1, 1, 0);
    cr_assert(eq(int, domain_load_folder(e2e_path("d"), "d", grey4, &dom, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, e2e_path("d/novel")), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
}

Test(domains, folder_with_fewer_than_four_classes_is_a_format_error)
{
    e2e_mkdir("three");
    const char *cls[3] = {"a", "b", "c"};
    make_classes("three", cls, 3, 1, 0);
    struct domain dom;
    poison(&dom);
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_folder(e2e_path("three"), "t", grey4, &dom, &err), EG_ERR_FORMAT));
    cr_assert(contains(err.msg, e2e_path("three")), "%s", err.msg);
    cr_assert(contains(err.msg, "novel"), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
    // An empty folder: imagefolder_load's own error, naming it.
    e2e_mkdir("empty");
    cr_assert(eq(int, domain_load_folder(e2e_path("empty"), "e", grey4, &dom, &err), EG_ERR_FORMAT));
    cr_assert(contains(err.msg, e2e_path("empty")), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
}

Test(domains, folder_passes_on_imagefolder_errors_after_loading_a_split)
{
    // base and val load; novel has a class folder without PNGs, so the loaded splits are freed.
    e2e_mkdir("d");
    e2e_mkdir("d/base");
    e2e_mkdir("d/val");
    e2e_mkdir("d/novel");
    const char *cls[2] = {"a", "b"};
    make_classes("d/base", cls, 2, 1, 0);
    make_classes("d/val", cls, 2, 1, 0);
    e2e_mkdir("d/novel/empty");
    struct domain dom;
    poison(&dom);
    struct eg_error err = {0};
    cr_assert(eq(int, domain_load_folder(e2e_path("d"), "d", grey4, &dom, &err), EG_ERR_FORMAT));
    cr_assert(contains(err.msg, e2e_path("d/novel")), "%s", err.msg);
    cr_assert(is_poisoned(&dom));
}

// ---------------------------------------------------------------------------------------------
// the splits file

Test(domains, write_splits_writes_a_row_per_class_of_every_split)
{
    e2e_mkdir("flat");
    const char *classes[9] = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8,x"};
    make_classes("flat", classes, 9, 2, 0);
    uint8_t pixels[5 * 25] = {0}, labels[5] = {0};
    write_idx(5, 5, 5, pixels, labels);
    struct domain dom[2];
    struct eg_error err = {0};
    load_fixture_domain(3, &dom[0]);
    cr_assert(eq(int, domain_load_folder(e2e_path("flat"), "flat", grey4, &dom[1], &err), EG_OK), "%s",
              err.msg);
    const char *roles[2] = {"seen", "unseen"};
    const char *path = e2e_path("splits.csv");
    cr_assert(eq(int, domains_write_splits(path, dom, roles, 2, &err), EG_OK), "%s", err.msg);
    char *text = e2e_read("splits.csv");
    cr_assert(text != NULL);
    const char *header = "domain,role,split,class,orig_class,name,images\n";
    cr_assert(strncmp(text, header, strlen(header)) == 0, "%s", text);
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        lines += *p == '\n';
    cr_assert(eq(sz, lines, 1 + 40 + 9), "%s", text);
    // Built-in: t-shirt rot0 holds the only image; folder: 5 base classes, c,8 made plain.
    cr_assert(contains(text, "\nfmnist-blurred,seen,base,0,0,tshirt/rot0,1\n"), "%s", text);
    cr_assert(contains(text, "\nfmnist-blurred,seen,novel,7,31,sneaker/rot270,0\n"), "%s", text);
    cr_assert(contains(text, "\nflat,unseen,val,1,5,c5,2\n"), "%s", text);
    cr_assert(contains(text, "\nflat,unseen,base,4,8,c8_x,2\n"), "%s", text);
    free(text);
    struct stat st;
    cr_assert(stat(e2e_path("splits.csv.tmp"), &st) != 0);
    domain_deinit(&dom[0]);
    domain_deinit(&dom[1]);
}

Test(domains, write_splits_to_an_unwritable_path_is_an_io_error)
{
    struct eg_error err = {0};
    const char *path = e2e_path("no/such/folder/splits.csv");
    cr_assert(eq(int, domains_write_splits(path, NULL, NULL, 0, &err), EG_ERR_IO));
    cr_assert(contains(err.msg, path), "%s", err.msg);
}

// ---------------------------------------------------------------------------------------------
// episode_images

Test(domains, episode_images_are_the_support_then_the_queries_class_major)
{
    // 6 classes of 5 images, 3 x 4 x 4 pixels: every image different.
    const struct shape s = {3, 4, 4};
    struct dataset d;
    dataset_alloc(&d, 30, s, 6);
    for (size_t i = 0; i < d.n; i++) {
        d.labels[i] = d.clean_labels[i] = (int32_t)(i % 6);
        for (size_t p = 0; p < 48; p++)
            d.pixels[i * 48 + p] = (uint8_t)(i * 7 + p * 3);
    }
    struct class_index ci;
    class_index_build(&ci, &d);
    struct rng r;
    rng_seed(&r, 11);
    struct episode ep;
    struct eg_error err = {0};
    cr_assert(eq(int, episode_sample(&ci, 3, 2, 2, 0, &r, &ep, &err), EG_OK), "%s", err.msg);

    struct augment aug = augment_none();
    aug.crop_pad = 1;
    aug.hflip = true;
    for (size_t c = 0; c < 3; c++) {
        aug.mean[c] = 0.25f * (float)c;
        aug.std[c] = 0.5f + (float)c;
    }
    float *x = eg_xmalloc_floats(12 * 48), want[48];
    struct rng r1, r2;
    rng_seed(&r1, 5);
    r2 = r1;
    episode_images(&d, &ep, &aug, &r1, x);
    // Images 0..5: support (class 0: 2 images, class 1, class 2), then 6..11 the queries.
    for (size_t t = 0; t < 12; t++) {
        size_t i = t < 6 ? ep.support[t] : ep.query[t - 6];
        size_t block = (t % 6) / 2;
        cr_assert(eq(i32, d.labels[i], (int32_t)ep.classes[block]), "image %zu", t);
        augment_image(&aug, s, d.pixels + i * 48, want, &r2);
        for (size_t p = 0; p < 48; p++)
            cr_assert(x[t * 48 + p] == want[p], "image %zu, element %zu", t, p);
    }
    cr_assert(memcmp(&r1, &r2, sizeof r1) == 0); // the same draws in the same order

    // No augmentation draws nothing: rng may be NULL.
    struct augment plain = augment_none();
    episode_images(&d, &ep, &plain, NULL, x);
    for (size_t p = 0; p < 48; p++)
        cr_assert(x[6 * 48 + p] == (float)d.pixels[ep.query[0] * 48 + p] / 255.0f);
    free(x);
    episode_deinit(&ep);
    class_index_deinit(&ci);
    dataset_deinit(&d);
}
