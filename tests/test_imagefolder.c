/* test_imagefolder.c - the image-folder loader: folder order, every PNG colour type converted to
 * RGB and to grey, 16-bit scaling, bilinear resizing, and each error path (status, a message
 * naming the file and the problem, *out untouched).
 *
 * Fixtures are PNGs written here with libpng's classic write API (exact colour types and bit
 * depths) into a fresh mkdtemp() folder per test, removed by the suite's .fini. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/status.h"
#include "data/dataset.h"
#include "helpers.h"

// ---------------------------------------------------------------------------------------------
// fixtures

static char g_root[64]; // this test's folder; each test runs in its own process

static void make_root(void)
{
    strcpy(g_root, "/tmp/eg-imagefolder-XXXXXX");
    cr_assert(mkdtemp(g_root) != NULL, "mkdtemp failed");
}

static void remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (S_ISDIR(sb.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            const struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
                size_t len = strlen(path) + strlen(e->d_name) + 2;
                char *child = eg_xmalloc(len);
                snprintf(child, len, "%s/%s", path, e->d_name);
                remove_tree(child);
                free(child);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void remove_root(void)
{
    if (g_root[0] != '\0') remove_tree(g_root);
}

TestSuite(imagefolder, .init = make_root, .fini = remove_root);

// g_root/rel, in one of 8 rotating buffers (valid for the next 7 calls).
static const char *fx(const char *rel)
{
    static char buf[8][512];
    static unsigned next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", g_root, rel);
    return p;
}

static void make_dir(const char *rel)
{
    cr_assert(mkdir(fx(rel), 0755) == 0, "mkdir %s", fx(rel));
}

static void write_bytes(const char *rel, const void *data, size_t n)
{
    FILE *f = fopen(fx(rel), "wb");
    cr_assert(f != NULL, "cannot create %s", fx(rel));
    cr_assert(fwrite(data, 1, n, f) == n);
    cr_assert(fclose(f) == 0);
}

static void write_text(const char *rel, const char *text)
{
    write_bytes(rel, text, strlen(text));
}

// Reads a whole fixture file; caller frees. *n: its length.
static uint8_t *read_bytes(const char *rel, size_t *n)
{
    FILE *f = fopen(fx(rel), "rb");
    cr_assert(f != NULL, "cannot open %s", fx(rel));
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    cr_assert(len > 0);
    rewind(f);
    uint8_t *b = eg_xmalloc((size_t)len);
    cr_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

// A PNG exactly as stored (struct png_spec, helpers.h) at g_root/rel.
static void write_png(const char *rel, const struct png_spec *s)
{
    png_write_spec(fx(rel), s);
}

// A PNG without palette or tRNS: h x w pixels of the given colour type and bit depth.
static void write_plain(const char *rel, size_t h, size_t w, int color_type, int bit_depth,
                        const uint8_t *data)
{
    write_png(rel, &(struct png_spec){.w = (png_uint_32)w,
                                      .h = (png_uint_32)h,
                                      .color_type = color_type,
                                      .bit_depth = bit_depth,
                                      .data = data});
}

// An 8-bit grey PNG of h x w pixels.
static void write_grey(const char *rel, size_t h, size_t w, const uint8_t *pix)
{
    write_plain(rel, h, w, PNG_COLOR_TYPE_GRAY, 8, pix);
}

// A 16 x 16 RGB PNG of pseudo-random pixels (they do not compress, so IDAT is most of the file).
static void write_noise_rgb(const char *rel)
{
    uint8_t pix[16 * 16 * 3];
    uint32_t s = 12345;
    for (size_t i = 0; i < sizeof pix; i++) {
        s = s * 1664525u + 1013904223u;
        pix[i] = (uint8_t)(s >> 24);
    }
    write_plain(rel, 16, 16, PNG_COLOR_TYPE_RGB, 8, pix);
}

// ---------------------------------------------------------------------------------------------
// the colour tree: 3 classes, 10 PNGs of 2 x 2 pixels in every colour type, other entries

static void build_colour_tree(void)
{
    // created out of order; byte order is "Mango" < "apple" < "zebra"
    make_dir("zebra");
    make_dir("apple");
    make_dir("Mango");

    // Mango (label 0): palette, palette + tRNS (2-bit indices), RGBA
    static const png_color pal4[] = {{10, 20, 30}, {200, 100, 50}, {0, 0, 250}, {255, 255, 255}};
    static const uint8_t pal_idx[] = {3, 2, 1, 0};
    write_png("Mango/palette.png", &(struct png_spec){.w = 2,
                                                      .h = 2,
                                                      .color_type = PNG_COLOR_TYPE_PALETTE,
                                                      .bit_depth = 8,
                                                      .data = pal_idx,
                                                      .palette = pal4,
                                                      .npalette = 4});
    static const png_color pal3[] = {{9, 8, 7}, {60, 70, 80}, {250, 0, 0}};
    static const png_byte trns[] = {0, 128};        // index 0 fully transparent, 1 half, 2 opaque
    static const uint8_t pal2_idx[] = {0x10, 0x90}; // rows (0, 1) and (2, 1), 2 bits each
    write_png("Mango/palette_trns.PNG", &(struct png_spec){.w = 2,
                                                           .h = 2,
                                                           .color_type = PNG_COLOR_TYPE_PALETTE,
                                                           .bit_depth = 2,
                                                           .data = pal2_idx,
                                                           .palette = pal3,
                                                           .npalette = 3,
                                                           .trns = trns,
                                                           .ntrns = 2});
    static const uint8_t rgba[] = {1,   2,   3,   0,   100, 150, 200, 255,
                                   255, 255, 255, 128, 40,  50,  60,  7};
    write_plain("Mango/rgba.png", 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba);

    // apple (label 1): RGB, grey, grey + alpha; "B_rgb" sorts before "a_grey" (byte order)
    static const uint8_t rgb[] = {255, 0, 0, 0, 255, 0, 0, 0, 250, 10, 20, 30};
    write_plain("apple/B_rgb.png", 2, 2, PNG_COLOR_TYPE_RGB, 8, rgb);
    static const uint8_t grey[] = {0, 77, 200, 255};
    write_grey("apple/a_grey.png", 2, 2, grey);
    static const uint8_t ga[] = {12, 0, 34, 128, 56, 255, 78, 9};
    write_plain("apple/c_greyalpha.png", 2, 2, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
    // ignored: other files, hidden files, a folder named like an image, a nested folder
    write_text("apple/notes.txt", "not an image\n");
    write_text("apple/.hidden.png", "a hidden file, not a PNG\n");
    make_dir("apple/dir.png");
    make_dir("apple/sub");
    write_grey("apple/sub/nested.png", 2, 2, grey);

    // zebra (label 2): 16-bit grey, 4-bit grey, 16-bit RGB, interlaced RGB
    static const uint8_t grey16[] = {0x00, 0x00, 0x00, 0x81, 0xFF, 0x00, 0xFF, 0xFF};
    write_plain("zebra/grey16.png", 2, 2, PNG_COLOR_TYPE_GRAY, 16, grey16);
    static const uint8_t grey4[] = {0x05, 0xAF}; // rows (0, 5) and (10, 15)
    write_plain("zebra/grey4.png", 2, 2, PNG_COLOR_TYPE_GRAY, 4, grey4);
    static const uint8_t rgb16[] = {0xFF, 0xFF, 0x00, 0x00, 0x01, 0xFF,  // (65535, 0, 511)
                                    0x12, 0x34, 0x80, 0x00, 0xFF, 0x00,  // (4660, 32768, 65280)
                                    0x00, 0x80, 0x00, 0x81, 0x01, 0x00,  // (128, 129, 256)
                                    0xAB, 0xCD, 0x55, 0x55, 0xAA, 0xAA}; // (43981, 21845, 43690)
    write_plain("zebra/rgb16.png", 2, 2, PNG_COLOR_TYPE_RGB, 16, rgb16);
    static const uint8_t rgbi[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    write_png("zebra/rgb_interlaced.png", &(struct png_spec){.w = 2,
                                                             .h = 2,
                                                             .color_type = PNG_COLOR_TYPE_RGB,
                                                             .bit_depth = 8,
                                                             .data = rgbi,
                                                             .interlace = true});

    // ignored at the root: a file and a hidden folder
    write_text("README.txt", "classes are folders\n");
    make_dir(".git");
    write_text(".git/HEAD", "ref: refs/heads/main\n");
}

#define COLOUR_TREE_N 10

// The tree's images in load order, converted to RGB: planes R, G, B of 4 pixels each.
// Alpha and tRNS are ignored (stored colours kept); 16-bit v -> round(v * 255 / 65535).
static const uint8_t colour_tree_rgb[COLOUR_TREE_N][12] = {
    {255, 0, 200, 10, 255, 0, 100, 20, 255, 250, 50, 30}, // Mango/palette.png
    {9, 60, 250, 60, 8, 70, 0, 70, 7, 80, 0, 80},         // Mango/palette_trns.PNG
    {1, 100, 255, 40, 2, 150, 255, 50, 3, 200, 255, 60},  // Mango/rgba.png
    {255, 0, 0, 10, 0, 255, 0, 20, 0, 0, 250, 30},        // apple/B_rgb.png
    {0, 77, 200, 255, 0, 77, 200, 255, 0, 77, 200, 255},  // apple/a_grey.png: repeated
    {12, 34, 56, 78, 12, 34, 56, 78, 12, 34, 56, 78},     // apple/c_greyalpha.png
    // zebra/grey16.png: 0x0081 -> 1 and 0xFF00 -> 254 (the high byte would give 0 and 255)
    {0, 1, 254, 255, 0, 1, 254, 255, 0, 1, 254, 255},
    {0, 85, 170, 255, 0, 85, 170, 255, 0, 85, 170, 255}, // zebra/grey4.png: v * 17
    // zebra/rgb16.png: 511 -> 2, 4660 -> 18, 32768 -> 128, 65280 -> 254, 128 -> 0, 129 -> 1,
    // 256 -> 1, 43981 -> 171, 21845 -> 85, 43690 -> 170
    {255, 18, 0, 171, 0, 128, 1, 85, 2, 254, 1, 170},
    {1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12}, // zebra/rgb_interlaced.png
};

// The same converted to grey: L = (19595 R + 38470 G + 7471 B + 32768) >> 16 (Pillow's
// convert("L")) for colour images, the stored value for grey ones.
static const uint8_t colour_tree_grey[COLOUR_TREE_N][4] = {
    // (255,255,255) (0,0,250) (200,100,50) (10,20,30); (0,0,250) is 28.5 in exact arithmetic,
    // and Pillow's fixed point gives 28
    {255, 28, 124, 18}, {8, 68, 75, 68}, // (9,8,7) (60,70,80) (250,0,0) (60,70,80)
    {2, 141, 255, 48},                   // (1,2,3) (100,150,200) (255,255,255) (40,50,60)
    {76, 150, 28, 18},                   // (255,0,0) (0,255,0) (0,0,250) (10,20,30)
    {0, 77, 200, 255},                   // grey as stored
    {12, 34, 56, 78},                    // grey + alpha: alpha dropped
    {0, 1, 254, 255},                    // 16-bit grey, rounded
    {0, 85, 170, 255},                   // 4-bit grey
    {76, 109, 1, 120}, // (255,0,2) (18,128,254) (0,1,1) (171,85,170): scaled first
    {2, 5, 8, 11},     // (1,2,3) (4,5,6) (7,8,9) (10,11,12)
};

static void load_ok(const char *root, struct shape want, struct dataset *d)
{
    struct eg_error err = {0};
    enum eg_status st = imagefolder_load(root, want, d, &err);
    cr_assert(eq(int, st, EG_OK), "imagefolder_load failed: %s", err.msg);
}

// Expects pixels (n, bytes) to equal want row by row; reports the image and the byte.
static void assert_pixels(const uint8_t *got, const uint8_t *want, size_t n, size_t bytes)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t b = 0; b < bytes; b++) {
            cr_assert(eq(u8, got[i * bytes + b], want[i * bytes + b]), "image %zu byte %zu", i, b);
        }
    }
}

Test(imagefolder, lists_classes_and_images_in_byte_order_and_ignores_other_entries)
{
    build_colour_tree();
    struct dataset d;
    load_ok(g_root, (struct shape){3, 2, 2}, &d);
    cr_assert(eq(sz, d.n, COLOUR_TREE_N));
    cr_assert(eq(sz, d.classes, 3));
    cr_assert(d.shape.c == 3 && d.shape.h == 2 && d.shape.w == 2);
    cr_assert(d.class_names != NULL);
    cr_assert(strcmp(d.class_names[0], "Mango") == 0, "%s", d.class_names[0]);
    cr_assert(strcmp(d.class_names[1], "apple") == 0, "%s", d.class_names[1]);
    cr_assert(strcmp(d.class_names[2], "zebra") == 0, "%s", d.class_names[2]);
    const int32_t labels[COLOUR_TREE_N] = {0, 0, 0, 1, 1, 1, 2, 2, 2, 2};
    for (size_t i = 0; i < COLOUR_TREE_N; i++) {
        cr_assert(eq(i32, d.labels[i], labels[i]), "i=%zu", i);
        cr_assert(eq(i32, d.clean_labels[i], labels[i]), "i=%zu", i);
    }
    dataset_deinit(&d);

    // a trailing '/' on the root changes nothing
    char root_slash[80];
    snprintf(root_slash, sizeof root_slash, "%s/", g_root);
    load_ok(root_slash, (struct shape){3, 2, 2}, &d);
    cr_assert(eq(sz, d.n, COLOUR_TREE_N));
    assert_pixels(d.pixels, &colour_tree_rgb[0][0], COLOUR_TREE_N, 12);
    dataset_deinit(&d);
}

Test(imagefolder, converts_every_colour_type_to_rgb_ignoring_alpha)
{
    build_colour_tree();
    struct dataset d;
    load_ok(g_root, (struct shape){3, 2, 2}, &d);
    assert_pixels(d.pixels, &colour_tree_rgb[0][0], COLOUR_TREE_N, 12);
    dataset_deinit(&d);
}

Test(imagefolder, converts_every_colour_type_to_grey_with_pillow_luma)
{
    build_colour_tree();
    struct dataset d;
    load_ok(g_root, (struct shape){1, 2, 2}, &d);
    cr_assert(d.shape.c == 1 && d.shape.h == 2 && d.shape.w == 2);
    assert_pixels(d.pixels, &colour_tree_grey[0][0], COLOUR_TREE_N, 4);
    dataset_deinit(&d);
}

Test(imagefolder, scales_every_16_bit_value_to_the_nearest_8_bit_value)
{
    // one 256 x 256 16-bit grey image holding every value v = 256 y + x once
    make_dir("c");
    uint8_t *pix = eg_xmalloc(256 * 256 * 2);
    for (size_t v = 0; v < 65536; v++) {
        pix[2 * v] = (uint8_t)(v >> 8);
        pix[2 * v + 1] = (uint8_t)(v & 0xFF);
    }
    write_plain("c/all.png", 256, 256, PNG_COLOR_TYPE_GRAY, 16, pix);
    free(pix);
    struct dataset d;
    load_ok(g_root, (struct shape){1, 256, 256}, &d);
    for (size_t v = 0; v < 65536; v++) {
        // round(v * 255 / 65535): never a tie, as 65535 is odd and 510 v is even
        size_t want = (v * 255 + 32767) / 65535;
        cr_assert(eq(u8, d.pixels[v], (uint8_t)want), "v=%zu", v);
    }
    dataset_deinit(&d);
}

Test(imagefolder, same_size_is_an_exact_copy)
{
    make_dir("c");
    uint8_t pix[5 * 7 * 3];
    for (size_t i = 0; i < sizeof pix; i++)
        pix[i] = (uint8_t)(i * 37 + 11);
    write_plain("c/x.png", 5, 7, PNG_COLOR_TYPE_RGB, 8, pix);
    struct dataset d;
    load_ok(g_root, (struct shape){3, 5, 7}, &d);
    for (size_t c = 0; c < 3; c++) {
        for (size_t p = 0; p < 35; p++) {
            cr_assert(eq(u8, d.pixels[c * 35 + p], pix[p * 3 + c]), "c=%zu p=%zu", c, p);
        }
    }
    dataset_deinit(&d);
}

Test(imagefolder, upscales_2x2_to_4x4_bilinear_with_half_pixel_centres)
{
    make_dir("c");
    // R = [10 20; 30 40], G = [0 255; 255 0], B = 200
    static const uint8_t pix[] = {10, 0, 200, 20, 255, 200, 30, 255, 200, 40, 0, 200};
    write_plain("c/x.png", 2, 2, PNG_COLOR_TYPE_RGB, 8, pix);
    struct dataset d;
    load_ok(g_root, (struct shape){3, 4, 4}, &d);
    // Source coordinates of outputs 0..3: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to
    // 1), so each axis mixes [a, b] as [a, .75a + .25b, .25a + .75b, b]. R rows before rounding:
    // [10 12.5 17.5 20], [15 17.5 22.5 25], [25 27.5 32.5 35], [30 32.5 37.5 40]; halves round
    // up. G: [0 63.75 191.25 255], [63.75 95.625 159.375 191.25], then the mirror image.
    static const uint8_t want[3 * 16] = {
        10,  13,  18,  20,  15,  18,  23,  25,  25,  28,  33,  35,  30,  33,  38,  40,  // R
        0,   64,  191, 255, 64,  96,  159, 191, 191, 159, 96,  64,  255, 191, 64,  0,   // G
        200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, // B
    };
    assert_pixels(d.pixels, want, 1, sizeof want);
    dataset_deinit(&d);
}

Test(imagefolder, downscales_4x4_to_2x2_by_averaging_each_block)
{
    make_dir("c");
    static const uint8_t pix[] = {0,   1,   10, 20, //
                                  2,   3,   30, 41, //
                                  255, 255, 7,  8,  //
                                  254, 254, 9,  9};
    write_grey("c/x.png", 4, 4, pix);
    struct dataset d;
    load_ok(g_root, (struct shape){1, 2, 2}, &d);
    // Source coordinates 0.5 and 2.5: weights 1/2, 1/2 on each axis, i.e. 2 x 2 block means
    // 1.5, 25.25, 254.5, 8.25, rounded halves up.
    static const uint8_t want[] = {2, 25, 255, 8};
    assert_pixels(d.pixels, want, 1, sizeof want);
    dataset_deinit(&d);
}

Test(imagefolder, resizes_each_axis_on_its_own)
{
    make_dir("c");
    static const uint8_t pix[] = {0, 100, 200}; // 1 row, 3 columns
    write_grey("c/x.png", 1, 3, pix);
    struct dataset d;
    load_ok(g_root, (struct shape){1, 2, 2}, &d);
    // columns: source x = 0.25 and 1.75 (scale 1.5) -> 25 and 175; rows: 1 -> 2 repeats the row
    static const uint8_t want[] = {25, 175, 25, 175};
    assert_pixels(d.pixels, want, 1, sizeof want);
    dataset_deinit(&d);
}

Test(imagefolder, resizes_images_of_different_sizes_to_one_shape)
{
    make_dir("c");
    static const uint8_t a[] = {10, 20, 30, 40};
    static const uint8_t b[] = {50}; // 1 x 1: every output pixel is the one input pixel
    write_grey("c/a.png", 2, 2, a);
    write_grey("c/b.png", 1, 1, b);
    write_grey("c/c.png", 2, 2, a); // the resize tables are made for 2 x 2 again
    struct dataset d;
    load_ok(g_root, (struct shape){1, 3, 3}, &d);
    // 2 -> 3: source coordinates -1/6 (clamped to 0), 0.5, 7/6 (clamped to 1)
    static const uint8_t want[] = {10, 15, 20, 20, 25, 30, 30, 35, 40, //
                                   50, 50, 50, 50, 50, 50, 50, 50, 50, //
                                   10, 15, 20, 20, 25, 30, 30, 35, 40};
    cr_assert(eq(sz, d.n, 3));
    assert_pixels(d.pixels, want, 3, 9);
    dataset_deinit(&d);
}

// ---------------------------------------------------------------------------------------------
// errors: status, a message with the path and the problem, *out untouched

static void expect_failure(const char *root, struct shape want, enum eg_status status,
                           const char *part1, const char *part2)
{
    struct dataset d, before;
    memset(&d, 0xA5, sizeof d);
    memcpy(&before, &d, sizeof d);
    struct eg_error err = {0};
    enum eg_status st = imagefolder_load(root, want, &d, &err);
    cr_assert(eq(int, st, status), "status %s (wanted %s), message: %s", eg_status_name(st),
              eg_status_name(status), err.msg);
    cr_assert(eq(int, err.status, status));
    cr_assert(strstr(err.msg, part1) != NULL, "'%s' is not in the message: %s", part1, err.msg);
    cr_assert(strstr(err.msg, part2) != NULL, "'%s' is not in the message: %s", part2, err.msg);
    cr_assert(memcmp(&d, &before, sizeof d) == 0, "*out was written on failure");
}

// A valid class "a" first, so failures also happen with a dataset half filled.
static void write_valid_class(void)
{
    static const uint8_t pix[] = {1, 2, 3, 4};
    make_dir("a");
    write_grey("a/ok.png", 2, 2, pix);
}

Test(imagefolder, rejects_a_missing_root)
{
    expect_failure(fx("nope"), (struct shape){3, 2, 2}, EG_ERR_IO, fx("nope"),
                   "No such file or directory");
}

Test(imagefolder, rejects_a_root_that_is_a_file)
{
    write_text("file.txt", "hello\n");
    expect_failure(fx("file.txt"), (struct shape){3, 2, 2}, EG_ERR_IO, fx("file.txt"),
                   "not a directory");
}

Test(imagefolder, rejects_a_root_without_class_folders)
{
    write_text("x.png", "images must be inside class folders\n");
    make_dir(".hidden"); // skipped, so it is no class
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, g_root, "no class folders");
}

Test(imagefolder, rejects_a_class_folder_without_pngs_and_names_it)
{
    write_valid_class();
    make_dir("bears");
    write_text("bears/notes.txt", "no images here\n");
    make_dir("bears/sub.png");
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, fx("bears"),
                   "class folder 'bears' has no .png files");
}

Test(imagefolder, rejects_a_text_file_named_png)
{
    write_valid_class();
    make_dir("b");
    write_text("b/x.png", "this is text, not a PNG image\n");
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, fx("b/x.png"),
                   "not a PNG file (bad signature)");
}

Test(imagefolder, rejects_a_file_shorter_than_the_signature)
{
    write_valid_class();
    write_bytes("a/tiny.png", "\x89PN", 3);
    expect_failure(g_root, (struct shape){1, 2, 2}, EG_ERR_FORMAT, fx("a/tiny.png"),
                   "shorter than the 8-byte PNG signature");
}

Test(imagefolder, rejects_a_png_cut_in_half)
{
    write_valid_class();
    make_dir("b");
    write_noise_rgb("b/full.png");
    size_t n;
    uint8_t *bytes = read_bytes("b/full.png", &n);
    write_bytes("b/half.png", bytes, n / 2);
    free(bytes);
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, fx("b/half.png"),
                   "invalid PNG: file is truncated");
}

Test(imagefolder, rejects_a_png_without_its_end)
{
    write_valid_class();
    make_dir("b");
    write_noise_rgb("b/full.png");
    size_t n;
    uint8_t *bytes = read_bytes("b/full.png", &n);
    write_bytes("b/noend.png", bytes, n - 12); // the IEND chunk is the last 12 bytes
    free(bytes);
    expect_failure(g_root, (struct shape){3, 16, 16}, EG_ERR_FORMAT, fx("b/noend.png"),
                   "truncated");
}

// The type field of the first IDAT chunk in a PNG file of n bytes.
static uint8_t *find_idat(uint8_t *bytes, size_t n)
{
    for (size_t i = 8; i + 4 <= n; i++) { // after the signature
        if (memcmp(bytes + i, "IDAT", 4) == 0) return bytes + i;
    }
    cr_fatal("no IDAT chunk");
    return NULL;
}

Test(imagefolder, rejects_a_png_with_a_bad_crc_with_libpngs_message)
{
    write_valid_class();
    write_noise_rgb("a/z.png");
    size_t n;
    uint8_t *bytes = read_bytes("a/z.png", &n);
    uint8_t *idat = find_idat(bytes, n);
    // The chunk's length precedes its type; its CRC follows its data. Flipping a CRC byte keeps
    // the zlib stream intact, so libpng's CRC check is what fails.
    size_t len =
        (size_t)idat[-4] << 24 | (size_t)idat[-3] << 16 | (size_t)idat[-2] << 8 | (size_t)idat[-1];
    cr_assert(idat + 4 + len + 4 <= bytes + n);
    idat[4 + len] ^= 0x55;
    write_bytes("a/z.png", bytes, n);
    free(bytes);
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, fx("a/z.png"),
                   "invalid PNG: IDAT: CRC error");
}

Test(imagefolder, rejects_a_png_with_corrupt_compressed_data)
{
    write_valid_class();
    write_noise_rgb("a/z.png");
    size_t n;
    uint8_t *bytes = read_bytes("a/z.png", &n);
    uint8_t *idat = find_idat(bytes, n);
    // The pixels do not compress, so these are stored bytes: zlib's checksum catches the change
    // before libpng reaches the chunk's CRC. zlib's exact words are its own affair.
    idat[4 + 100] ^= 0x55;
    write_bytes("a/z.png", bytes, n);
    free(bytes);
    expect_failure(g_root, (struct shape){3, 2, 2}, EG_ERR_FORMAT, fx("a/z.png"),
                   "invalid PNG: IDAT: ");
}

Test(imagefolder, rejects_an_image_too_large_to_decode_before_allocating_it)
{
    write_valid_class();
    // a header claiming 20000 x 20000 pixels (4e8 > 2^28), and no pixel data
    FILE *f = fopen(fx("a/huge.png"), "wb");
    cr_assert(f != NULL);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png != NULL && info != NULL);
    if (setjmp(png_jmpbuf(png))) cr_fatal("libpng could not write the header");
    png_init_io(png, f);
    png_set_IHDR(png, info, 20000, 20000, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_destroy_write_struct(&png, &info);
    // the start of an IDAT chunk: png_read_info stops there, with the size known
    cr_assert(fwrite("\0\0\0\0IDAT", 1, 8, f) == 8);
    cr_assert(fclose(f) == 0);
    expect_failure(g_root, (struct shape){1, 2, 2}, EG_ERR_FORMAT, fx("a/huge.png"),
                   "20000 x 20000 pixels is more than");
}

Test(imagefolder, rejects_channel_counts_other_than_1_or_3)
{
    write_valid_class();
    expect_failure(g_root, (struct shape){0, 2, 2}, EG_ERR_ARG, g_root, "want.c = 0");
    expect_failure(g_root, (struct shape){2, 2, 2}, EG_ERR_ARG, g_root, "want.c = 2");
    expect_failure(g_root, (struct shape){4, 2, 2}, EG_ERR_ARG, "expected 1 (grey) or 3 (RGB)",
                   "want.c = 4");
}

Test(imagefolder, rejects_a_zero_height_or_width)
{
    write_valid_class();
    expect_failure(g_root, (struct shape){3, 0, 2}, EG_ERR_ARG, g_root, "want.h x want.w = 0 x 2");
    expect_failure(g_root, (struct shape){1, 2, 0}, EG_ERR_ARG, g_root, "both must be at least 1");
}
