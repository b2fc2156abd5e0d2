/* test_augment.c - crop with reflect padding, flip and normalisation against a reference written
 * here that builds the padded image and crops it (drawing the same random numbers), hand-worked
 * padding and rotations, and Pillow's fixed rotation: an independent double-precision version of
 * its formula, and outputs recorded from Pillow 9.4.0 where its fixed-point arithmetic matters. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/augment.h"

// ---------------------------------------------------------------------------------------------
// Reference: materialise the reflect-padded image, crop, flip, normalise.

// numpy "reflect" by folding with period 2(n-1); any i (n >= 2).
static size_t fold(ptrdiff_t i, size_t n)
{
    ptrdiff_t period = 2 * ((ptrdiff_t)n - 1);
    ptrdiff_t r = i % period;
    if (r < 0) r += period;
    return (size_t)(r < (ptrdiff_t)n ? r : period - r);
}

// Same contract as augment_image, the slow and obvious way.
static void ref_augment(const struct augment *a, struct shape s, const uint8_t *src, float *dst,
                        struct rng *rng)
{
    const size_t C = s.c, H = s.h, W = s.w, p = a->crop_pad;
    const size_t Hp = H + 2 * p, Wp = W + 2 * p;
    uint8_t *padded = eg_xmalloc(C * Hp * Wp);
    for (size_t c = 0; c < C; c++) {
        for (size_t y = 0; y < Hp; y++) {
            for (size_t x = 0; x < Wp; x++) {
                size_t sy = fold((ptrdiff_t)y - (ptrdiff_t)p, H);
                size_t sx = fold((ptrdiff_t)x - (ptrdiff_t)p, W);
                padded[(c * Hp + y) * Wp + x] = src[(c * H + sy) * W + sx];
            }
        }
    }
    size_t oy = p, ox = p;
    if (p > 0) {
        oy = (size_t)rng_below(rng, 2 * p + 1);
        ox = (size_t)rng_below(rng, 2 * p + 1);
    }
    bool flip = a->hflip && rng_below(rng, 2) == 1;
    for (size_t c = 0; c < C; c++) {
        for (size_t y = 0; y < H; y++) {
            for (size_t x = 0; x < W; x++) {
                size_t cx = flip ? W - 1 - x : x;
                uint8_t v = padded[(c * Hp + y + oy) * Wp + cx + ox];
                dst[(c * H + y) * W + x] = ((float)v / 255.0f - a->mean[c]) / a->std[c];
            }
        }
    }
    free(padded);
}

static void fill_random_bytes(struct rng *r, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng_below(r, 256);
}

static void assert_same_floats(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cr_assert(got[i] == want[i], "%s: at %zu got %.9g want %.9g", what, i, (double)got[i],
                  (double)want[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// Normalisation

Test(augment, none_gives_plain_x_over_255)
{
    struct augment a = augment_none();
    cr_assert(eq(sz, a.crop_pad, 0));
    cr_assert(a.hflip == false);
    const uint8_t src[4] = {0, 1, 128, 255};
    float dst[4];
    augment_image(&a, (struct shape){1, 2, 2}, src, dst, NULL);
    for (int i = 0; i < 4; i++)
        cr_assert(dst[i] == (float)src[i] / 255.0f, "at %d", i);
    cr_assert(dst[3] == 1.0f);
}

Test(augment, normalisation_constants_by_dataset)
{
    struct augment a;
    cr_assert(augment_normalisation("mnist", &a));
    cr_assert(a.mean[0] == 0.1307f && a.std[0] == 0.3081f);
    cr_assert(augment_normalisation("fashion_mnist", &a));
    cr_assert(a.mean[0] == 0.2860f && a.std[0] == 0.3530f);
    cr_assert(eq(sz, a.crop_pad, 0));
    cr_assert(a.hflip == false);
    const double cm[3] = {125.3, 123.0, 113.9}, cs[3] = {63.0, 62.1, 66.7};
    const char *cifars[2] = {"cifar10", "cifar100"};
    for (int k = 0; k < 2; k++) {
        cr_assert(augment_normalisation(cifars[k], &a));
        for (int c = 0; c < 3; c++) {
            cr_assert(a.mean[c] == (float)(cm[c] / 255.0), "%s c=%d", cifars[k], c);
            cr_assert(a.std[c] == (float)(cs[c] / 255.0), "%s c=%d", cifars[k], c);
        }
    }
    cr_assert(augment_normalisation("imagenet", &a));
    const float im[3] = {0.485f, 0.456f, 0.406f}, is[3] = {0.229f, 0.224f, 0.225f};
    for (int c = 0; c < 3; c++)
        cr_assert(a.mean[c] == im[c] && a.std[c] == is[c], "c=%d", c);

    struct augment before = augment_none();
    before.crop_pad = 3;
    struct augment b = before;
    cr_assert(augment_normalisation("svhn", &b) == false);
    // field by field: the struct has padding, which memcmp would read uninitialised
    bool same = b.crop_pad == before.crop_pad && b.hflip == before.hflip;
    for (int c = 0; c < AUGMENT_MAX_CHANNELS; c++)
        same = same && b.mean[c] == before.mean[c] && b.std[c] == before.std[c];
    cr_assert(same, "untouched on an unknown name");
}

Test(augment, normalisation_is_exact_on_known_pixels)
{
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    // Channel c holds the pixels 0, 125, 128, 255 (a 3 x 2 x 2 image).
    const uint8_t v[4] = {0, 125, 128, 255};
    uint8_t src[12];
    for (int c = 0; c < 3; c++)
        memcpy(src + 4 * c, v, 4);
    float dst[12];
    augment_image(&a, (struct shape){3, 2, 2}, src, dst, NULL);
    const double cm[3] = {125.3, 123.0, 113.9}, cs[3] = {63.0, 62.1, 66.7};
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < 4; i++) {
            // (x/255 - m/255) / (s/255) = (x - m) / s
            double want = ((double)v[i] - cm[c]) / cs[c];
            float got = dst[4 * c + i];
            cr_assert(fabs((double)got - want) <= 1e-6 * fmax(1.0, fabs(want)),
                      "c=%d x=%d: got %.9g want %.9g", c, v[i], (double)got, want);
            // bit-exact with torchvision's float32 x.div(255).sub_(mean).div_(std)
            float torch = ((float)v[i] / 255.0f - a.mean[c]) / a.std[c];
            cr_assert(got == torch, "c=%d x=%d", c, v[i]);
        }
    }
    // MNIST: pixel 0 becomes -0.1307 / 0.3081, pixel 255 (1 - 0.1307) / 0.3081.
    cr_assert(augment_normalisation("mnist", &a));
    const uint8_t m[2] = {0, 255};
    float md[2];
    augment_image(&a, (struct shape){1, 1, 2}, m, md, NULL);
    cr_assert(fabs((double)md[0] + 0.1307 / 0.3081) < 1e-6);
    cr_assert(fabs((double)md[1] - (1.0 - 0.1307) / 0.3081) < 1e-6);
}

// ---------------------------------------------------------------------------------------------
// Crop and flip

Test(augment, reflect_padding_of_a_hand_worked_image)
{
    // Pixel (y, x) = 10*(y+1) + (x+1) on a 4 x 4 image: rows and columns are both [1 2 3 4].
    // Reflect-padded by 2 (edge not repeated) they read [3 2 1 2 3 4 3 2].
    const uint8_t prow[8] = {3, 2, 1, 2, 3, 4, 3, 2};
    uint8_t src[16];
    for (int y = 0; y < 4; y++) {
        for (int x = 0; x < 4; x++)
            src[y * 4 + x] = (uint8_t)(10 * (y + 1) + x + 1);
    }
    struct augment a = augment_none();
    a.crop_pad = 2;
    struct rng r;
    rng_seed(&r, 5);
    int seen[5][5] = {{0}};
    for (int t = 0; t < 300; t++) {
        struct rng peek = r; // the same draws augment_image makes
        size_t oy = (size_t)rng_below(&peek, 5), ox = (size_t)rng_below(&peek, 5);
        float dst[16];
        augment_image(&a, (struct shape){1, 4, 4}, src, dst, &r);
        cr_assert(memcmp(&peek, &r, sizeof r) == 0, "two draws, nothing else");
        seen[oy][ox] = 1;
        for (size_t y = 0; y < 4; y++) {
            for (size_t x = 0; x < 4; x++) {
                int want = 10 * prow[oy + y] + prow[ox + x];
                cr_assert(dst[y * 4 + x] == (float)want / 255.0f, "oy=%zu ox=%zu (%zu,%zu)", oy, ox,
                          y, x);
            }
        }
    }
    for (int i = 0; i < 25; i++)
        cr_assert(seen[i / 5][i % 5], "offset (%d,%d) drawn", i / 5, i % 5);
}

Test(augment, crop_offsets_match_padded_reference)
{
    struct rng data;
    rng_seed(&data, 1);
    const struct shape s = {3, 8, 6};
    uint8_t src[3 * 8 * 6];
    fill_random_bytes(&data, src, sizeof src);
    for (size_t pad = 1; pad < 6; pad++) {
        struct augment a = augment_none();
        a.crop_pad = pad;
        struct rng r1, r2;
        rng_seed(&r1, 100 + pad);
        rng_seed(&r2, 100 + pad);
        for (int t = 0; t < 200; t++) {
            float got[3 * 8 * 6], want[3 * 8 * 6];
            augment_image(&a, s, src, got, &r1);
            ref_augment(&a, s, src, want, &r2);
            assert_same_floats("crop", got, want, shape_numel(s));
        }
        cr_assert(eq(u64, rng_u64(&r1), rng_u64(&r2)), "same number of draws");
    }
}

Test(augment, flip_reverses_each_row_half_the_time)
{
    struct rng data;
    rng_seed(&data, 2);
    const struct shape s = {2, 3, 5};
    uint8_t src[30];
    fill_random_bytes(&data, src, sizeof src);
    struct augment a = augment_none();
    a.hflip = true;
    struct rng r;
    rng_seed(&r, 9);
    int flips = 0;
    const int T = 2000;
    for (int t = 0; t < T; t++) {
        struct rng peek = r;
        bool flip = rng_below(&peek, 2) == 1;
        float dst[30];
        augment_image(&a, s, src, dst, &r);
        cr_assert(memcmp(&peek, &r, sizeof r) == 0, "one draw");
        flips += flip;
        for (size_t p = 0; p < 6; p++) { // (channel, row) pairs
            for (size_t x = 0; x < 5; x++) {
                uint8_t v = src[p * 5 + (flip ? 4 - x : x)];
                cr_assert(dst[p * 5 + x] == (float)v / 255.0f, "t=%d p=%zu x=%zu", t, p, x);
            }
        }
    }
    cr_assert(flips > T / 2 - 150 && flips < T / 2 + 150, "flips=%d of %d", flips, T); // ~7 sd
}

Test(augment, crop_and_flip_match_reference_for_many_draws)
{
    struct rng data;
    rng_seed(&data, 3);
    const struct shape s = {3, 8, 6};
    uint8_t src[3 * 8 * 6];
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    a.hflip = true;
    for (size_t pad = 1; pad < 6; pad++) {
        a.crop_pad = pad;
        struct rng r1, r2;
        rng_seed(&r1, 7 * pad);
        rng_seed(&r2, 7 * pad);
        for (int t = 0; t < 500; t++) {
            fill_random_bytes(&data, src, sizeof src);
            float got[3 * 8 * 6], want[3 * 8 * 6];
            augment_image(&a, s, src, got, &r1);
            ref_augment(&a, s, src, want, &r2);
            assert_same_floats("crop+flip", got, want, shape_numel(s));
        }
        cr_assert(eq(u64, rng_u64(&r1), rng_u64(&r2)), "same number of draws");
    }
}

Test(augment, cifar_pad4_crop_flip_matches_reference)
{
    struct rng data, r1, r2;
    rng_seed(&data, 4);
    rng_seed(&r1, 44);
    rng_seed(&r2, 44);
    const struct shape s = {3, 32, 32};
    const size_t n = shape_numel(s);
    uint8_t *src = eg_xmalloc(n);
    float *got = eg_xmalloc_floats(n), *want = eg_xmalloc_floats(n);
    struct augment a;
    cr_assert(augment_normalisation("cifar10", &a));
    a.crop_pad = 4;
    a.hflip = true;
    for (int t = 0; t < 200; t++) {
        fill_random_bytes(&data, src, n);
        augment_image(&a, s, src, got, &r1);
        ref_augment(&a, s, src, want, &r2);
        assert_same_floats("cifar", got, want, n);
    }
    free(src);
    free(got);
    free(want);
}

Test(augment, same_seed_same_output_and_other_seed_differs)
{
    struct rng data;
    rng_seed(&data, 5);
    const struct shape s = {3, 32, 32};
    const size_t n = shape_numel(s);
    uint8_t *src = eg_xmalloc(n);
    fill_random_bytes(&data, src, n);
    float *x1 = eg_xmalloc_floats(n), *x2 = eg_xmalloc_floats(n), *x3 = eg_xmalloc_floats(n);
    struct augment a;
    cr_assert(augment_normalisation("cifar100", &a));
    a.crop_pad = 4;
    a.hflip = true;
    struct rng r1, r2, r3;
    rng_seed(&r1, 77);
    rng_seed(&r2, 77);
    rng_seed(&r3, 78);
    int differ = 0;
    for (int t = 0; t < 20; t++) {
        augment_image(&a, s, src, x1, &r1);
        augment_image(&a, s, src, x2, &r2);
        augment_image(&a, s, src, x3, &r3);
        cr_assert(memcmp(x1, x2, n * sizeof *x1) == 0, "t=%d", t);
        differ += memcmp(x1, x3, n * sizeof *x1) != 0;
    }
    cr_assert(gt(int, differ, 10)); // 1 in 162 draws coincide
    free(src);
    free(x1);
    free(x2);
    free(x3);
}

Test(augment, draws_nothing_when_off)
{
    struct rng r, before;
    rng_seed(&r, 6);
    before = r;
    const uint8_t src[4] = {1, 2, 3, 4};
    float dst[4];
    struct augment a = augment_none(); // crop and flip off; normalisation sets only mean/std
    cr_assert(augment_normalisation("mnist", &a));
    augment_image(&a, (struct shape){1, 2, 2}, src, dst, &r);
    cr_assert(memcmp(&r, &before, sizeof r) == 0);
}

Test(augment, crop_pad_not_below_size_aborts, .signal = SIGABRT)
{
    struct augment a = augment_none();
    a.crop_pad = 4;
    struct rng r;
    rng_seed(&r, 1);
    uint8_t src[4 * 8] = {0};
    float dst[4 * 8];
    augment_image(&a, (struct shape){1, 4, 8}, src, dst, &r); // pad 4 needs h, w >= 5
}

// ---------------------------------------------------------------------------------------------
// Rotation (PIL Image.rotate, NEAREST, fill 0)

// src[i] = i + 1 (+ 100 per channel), so every pixel is non-zero and distinct.
static void fill_counting(uint8_t *p, struct shape s)
{
    size_t plane = s.h * s.w;
    for (size_t c = 0; c < s.c; c++) {
        for (size_t i = 0; i < plane; i++)
            p[c * plane + i] = (uint8_t)(i + 1 + 100 * c);
    }
}

Test(rotate, multiples_of_360_are_the_identity)
{
    const struct shape s = {3, 5, 7};
    uint8_t src[105], dst[105];
    fill_counting(src, s);
    const double angles[5] = {0.0, 360.0, -360.0, 720.0, -0.0};
    for (int k = 0; k < 5; k++) {
        memset(dst, 0xAB, sizeof dst);
        augment_rotate_u8(src, dst, s, angles[k]);
        cr_assert(memcmp(src, dst, sizeof src) == 0, "angle %g", angles[k]);
    }
}

Test(rotate, by_90_is_counter_clockwise)
{
    // 4 x 4: the top row 1 2 3 4 moves to the left column, read upwards.
    const struct shape s = {1, 4, 4};
    uint8_t src[16], dst[16];
    fill_counting(src, s);
    // clang-format off
    const uint8_t want90[16] = {
        4, 8, 12, 16,
        3, 7, 11, 15,
        2, 6, 10, 14,
        1, 5, 9,  13,
    };
    // clang-format on
    // clang-format off
    const uint8_t want270[16] = {
        13, 9,  5, 1,
        14, 10, 6, 2,
        15, 11, 7, 3,
        16, 12, 8, 4,
    };
    // clang-format on
    augment_rotate_u8(src, dst, s, 90.0);
    cr_assert(memcmp(dst, want90, 16) == 0);
    augment_rotate_u8(src, dst, s, 450.0);
    cr_assert(memcmp(dst, want90, 16) == 0);
    augment_rotate_u8(src, dst, s, 270.0);
    cr_assert(memcmp(dst, want270, 16) == 0);
    augment_rotate_u8(src, dst, s, -90.0);
    cr_assert(memcmp(dst, want270, 16) == 0);
}

Test(rotate, by_180_on_an_even_image_reverses_every_plane)
{
    const struct shape s = {2, 4, 6};
    uint8_t src[48], dst[48];
    fill_counting(src, s);
    // clang-format off
    const uint8_t want[48] = {
        24,  23,  22,  21,  20,  19,
        18,  17,  16,  15,  14,  13,
        12,  11,  10,  9,   8,   7,
        6,   5,   4,   3,   2,   1,
        124, 123, 122, 121, 120, 119,
        118, 117, 116, 115, 114, 113,
        112, 111, 110, 109, 108, 107,
        106, 105, 104, 103, 102, 101,
    };
    // clang-format on
    augment_rotate_u8(src, dst, s, 180.0);
    cr_assert(memcmp(dst, want, sizeof want) == 0);
    augment_rotate_u8(src, dst, s, -180.0);
    cr_assert(memcmp(dst, want, sizeof want) == 0);
}

Test(rotate, by_90_on_a_non_square_image_turns_the_central_square)
{
    // 4 rows x 6 columns (Pillow rotates about (3, 2) without expanding): output (y, x) reads
    // input (x-1, 4-y) for x in 1..4; columns 0 and 5 have no source. Also Pillow 9.4.0's output.
    const struct shape s = {1, 4, 6};
    uint8_t src[24], dst[24];
    fill_counting(src, s);
    // clang-format off
    const uint8_t want[24] = {
        0, 5, 11, 17, 23, 0,
        0, 4, 10, 16, 22, 0,
        0, 3, 9,  15, 21, 0,
        0, 2, 8,  14, 20, 0,
    };
    // clang-format on
    augment_rotate_u8(src, dst, s, 90.0);
    cr_assert(memcmp(dst, want, sizeof want) == 0);
}

// The rotation formula in double, written out directly: output pixel (x, y) samples the input at
// the inverse rotation of its centre (x + 0.5, y + 0.5) about (w/2, h/2), with the coefficients
// rounded to 15 decimals (as Image.rotate does); floor, zero outside. *margin is set to the
// smallest distance of any in-image sample coordinate from an integer.
static void ref_rotate(const uint8_t *src, uint8_t *dst, struct shape s, double degrees,
                       double *margin)
{
    const double a = -degrees * 3.14159265358979323846 / 180.0;
    const double co = round(cos(a) * 1e15) / 1e15, si = round(sin(a) * 1e15) / 1e15;
    const double cx = (double)s.w / 2.0, cy = (double)s.h / 2.0;
    *margin = 1.0;
    memset(dst, 0, shape_numel(s));
    for (size_t y = 0; y < s.h; y++) {
        for (size_t x = 0; x < s.w; x++) {
            double u = (double)x + 0.5 - cx, v = (double)y + 0.5 - cy;
            double xin = co * u + si * v + cx, yin = -si * u + co * v + cy;
            if (xin < 0.0 || xin >= (double)s.w || yin < 0.0 || yin >= (double)s.h) continue;
            double fx = xin - floor(xin), fy = yin - floor(yin);
            *margin = fmin(*margin, fmin(fmin(fx, 1.0 - fx), fmin(fy, 1.0 - fy)));
            for (size_t c = 0; c < s.c; c++) {
                dst[(c * s.h + y) * s.w + x] =
                    src[(c * s.h + (size_t)floor(yin)) * s.w + (size_t)floor(xin)];
            }
        }
    }
}

Test(rotate, by_30_matches_the_double_formula_away_from_pixel_edges)
{
    // Pillow's 16.16 fixed point is off the exact position by at most (1 + x + y) * 2^-17 (the
    // rounding of the start and of one step per column and row), so wherever every sample lies
    // farther than that from a pixel edge, it must agree with the exact formula. These sizes
    // and angles keep every sample at least 1e-3 away (30 degrees: 0.013 on 28 x 28 and 32 x 32).
    const struct shape shapes[3] = {{3, 6, 8}, {1, 28, 28}, {3, 32, 32}};
    const double angles[4] = {30.0, -30.0, 17.0, 60.0};
    for (int k = 0; k < 3; k++) {
        struct shape s = shapes[k];
        size_t n = shape_numel(s);
        uint8_t *src = eg_xmalloc(n), *got = eg_xmalloc(n), *want = eg_xmalloc(n);
        struct rng r;
        rng_seed(&r, 30 + (uint64_t)k);
        for (size_t i = 0; i < n; i++)
            src[i] = (uint8_t)(1 + rng_below(&r, 255));
        for (int j = 0; j < 4; j++) {
            double margin;
            ref_rotate(src, want, s, angles[j], &margin);
            double bound = (double)(1 + s.w + s.h) * 0x1p-17;
            cr_assert(gt(dbl, margin, bound), "test setup: a sample lies near a pixel edge");
            augment_rotate_u8(src, got, s, angles[j]);
            for (size_t i = 0; i < n; i++) {
                cr_assert(eq(u8, got[i], want[i]), "shape %zu angle %g at %zu", (size_t)k,
                          angles[j], i);
            }
        }
        free(src);
        free(got);
        free(want);
    }
}

Test(rotate, by_30_on_odd_sizes_matches_pillow_fixed_point)
{
    // 5 x 7: centre (3.5, 2.5). Output (2, 4) samples input row exactly 3 in exact arithmetic;
    // the matrix form in doubles gets 2.9999999999999996 (row 2), Pillow's fixed point row 3.
    // Expected images recorded from Pillow 9.4.0: Image.frombytes("L", (7, 5), bytes(1..35))
    // .rotate(30, resample=NEAREST, fillcolor=0).
    const struct shape s = {1, 5, 7};
    uint8_t src[35], dst[35];
    fill_counting(src, s);
    // clang-format off
    const uint8_t want[35] = {
        0, 0,  4,  5,  13, 14, 0,
        2, 3,  11, 12, 19, 20, 28,
        8, 9,  17, 18, 26, 27, 35,
        8, 16, 17, 25, 25, 33, 34,
        0, 22, 23, 31, 32, 0,  0,
    };
    // clang-format on
    augment_rotate_u8(src, dst, s, 30.0);
    for (size_t i = 0; i < 35; i++)
        cr_assert(eq(u8, dst[i], want[i]), "at (%zu,%zu)", i / 7, i % 7);
    // Evaluated as Image.rotate's matrix, m3*(x+0.5) + m4*(y+0.5) + f, the double lands below 3.
    const double m3 = 0.5, m4 = 0.866025403784439;
    const double f = m3 * -3.5 + m4 * -2.5 + 0.0 + 2.5;
    cr_assert(lt(dbl, m3 * 4.5 + m4 * 2.5 + f, 3.0));
    cr_assert(eq(u8, dst[2 * 7 + 4], src[3 * 7 + 4]), "row 3, as Pillow");

    // RGB 3 x 5 (channel c = i + 1 + 100c) rotated by -30, from Pillow 9.4.0 in mode "RGB".
    const struct shape s3 = {3, 3, 5};
    uint8_t src3[45], dst3[45];
    fill_counting(src3, s3);
    // clang-format off
    const uint8_t want3[45] = {
        6,   7,   3,   3,   0,
        11,  12,  8,   9,   5,
        0,   13,  14,  9,   10,
        106, 107, 103, 103, 0,
        111, 112, 108, 109, 105,
        0,   113, 114, 109, 110,
        206, 207, 203, 203, 0,
        211, 212, 208, 209, 205,
        0,   213, 214, 209, 210,
    };
    // clang-format on
    augment_rotate_u8(src3, dst3, s3, -30.0);
    cr_assert(memcmp(dst3, want3, sizeof want3) == 0);
}

Test(rotate, by_30_keeps_the_overlap_of_the_two_squares)
{
    // A square rotated by t about its centre overlaps itself in 1 - 2 q^2 sin t cos t of its
    // area, q = 1 / (1 + sin t + cos t): 0.845 for 30 degrees. Corners become fill.
    const double t = 30.0 * 3.14159265358979323846 / 180.0;
    const double q = 1.0 / (1.0 + sin(t) + cos(t));
    const double frac = 1.0 - 2.0 * q * q * sin(t) * cos(t);
    const struct shape shapes[2] = {{1, 28, 28}, {3, 32, 32}};
    for (int k = 0; k < 2; k++) {
        struct shape s = shapes[k];
        size_t n = shape_numel(s), plane = s.h * s.w;
        uint8_t *src = eg_xmalloc(n), *dst = eg_xmalloc(n);
        memset(src, 255, n);
        augment_rotate_u8(src, dst, s, 30.0);
        for (size_t c = 0; c < s.c; c++) {
            const uint8_t *p = dst + c * plane;
            size_t kept = 0;
            for (size_t i = 0; i < plane; i++)
                kept += p[i] != 0;
            double f = (double)kept / (double)plane;
            cr_assert(fabs(f - frac) < 0.02, "%zu x %zu: kept %.4f, area %.4f", s.h, s.w, f, frac);
            cr_assert(p[0] == 0 && p[s.w - 1] == 0 && p[plane - s.w] == 0 && p[plane - 1] == 0);
            cr_assert(p[(s.h / 2) * s.w + s.w / 2] == 255);
            cr_assert(memcmp(p, dst, plane) == 0, "channels rotate alike");
        }
        free(src);
        free(dst);
    }
}

Test(rotate, tiny_angles_take_pillows_scaling_loop_and_keep_the_image)
{
    // sin(1e-14 degrees) rounds to 0 at 15 decimals: Pillow's scaling loop with the identity.
    // -1e-14 % 360 is 360.0 in doubles, which is not the angle-0 fast path but the same loop.
    const struct shape s = {3, 5, 7};
    uint8_t src[105], dst[105];
    fill_counting(src, s);
    const double angles[2] = {1e-14, -1e-14};
    for (int k = 0; k < 2; k++) {
        memset(dst, 0xAB, sizeof dst);
        augment_rotate_u8(src, dst, s, angles[k]);
        cr_assert(memcmp(src, dst, sizeof src) == 0, "angle %g", angles[k]);
    }
}

Test(rotate, wide_image_uses_pillows_floating_point_loop)
{
    // 1 x 70000: corner (70000, 0) maps beyond 32768, out of 16.16 range. At 90 degrees the
    // only output pixel with a source is (0, 34999), reading input column 35000 (as Pillow 9.4.0).
    const struct shape s = {1, 1, 70000};
    uint8_t *src = eg_xmalloc(70000), *dst = eg_xmalloc(70000);
    for (size_t i = 0; i < 70000; i++)
        src[i] = (uint8_t)(1 + i % 251);
    augment_rotate_u8(src, dst, s, 90.0);
    for (size_t i = 0; i < 70000; i++) {
        cr_assert(eq(u8, dst[i], i == 34999 ? src[35000] : 0), "at %zu", i);
    }
    free(src);
    free(dst);
}

Test(rotate, overlapping_buffers_abort, .signal = SIGABRT)
{
    uint8_t buf[20] = {0};
    augment_rotate_u8(buf, buf + 4, (struct shape){1, 4, 4}, 30.0);
}
