/* augment.c - 8-bit images to normalised floats with random crop (reflect padding) and
 * horizontal flip, and PIL's fixed rotation.
 *
 * augment_image follows the MW-Net CIFAR pipeline: F.pad(mode='reflect') by crop_pad,
 * RandomCrop back to the original size, RandomHorizontalFlip, ToTensor, Normalize. The padded
 * image is never built: each output pixel reads its source through reflected indices.
 * Normalisation goes through a per-channel table of 256 floats computed with the same float32
 * operations as torchvision (x.div(255), then sub_(mean).div_(std)), so values match bit for bit.
 *
 * augment_rotate_u8 reproduces Pillow's Image.rotate(angle, NEAREST, expand=False) including its
 * 16.16 fixed-point sampling loop, which can pick another pixel than a floor in doubles where a
 * sample lies within (1 + x + y) * 2^-17 of a pixel edge (odd sizes even give exact ties).
 * Allocates nothing. */
#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/status.h"

struct augment augment_none(void)
{
    struct augment a = {.crop_pad = 0, .hflip = false};
    for (size_t c = 0; c < AUGMENT_MAX_CHANNELS; c++) {
        a.mean[c] = 0.0f;
        a.std[c] = 1.0f;
    }
    return a;
}

// Per-channel statistics of x/255 on a dataset's training images. Each value is the double the
// reference code writes (e.g. 125.3 / 255), rounded once to float as torch.tensor(list) does.
struct norm_entry {
    const char *name;
    size_t channels;
    double mean[3], std[3];
};

// clang-format off
static const struct norm_entry norm_table[] = {
    // torchvision MNIST example / EvoGrad rotation code: Normalize((0.1307,), (0.3081,))
    {"mnist",         1, {0.1307}, {0.3081}},
    // The commonly used Fashion-MNIST statistics, computed from its 60,000 training images.
    {"fashion_mnist", 1, {0.2860}, {0.3530}},
    // MW-Net code (spec 3.4): mean (125.3, 123.0, 113.9) / 255, std (63.0, 62.1, 66.7) / 255
    {"cifar10",  3, {125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0},
                    {63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0}},
    {"cifar100", 3, {125.3 / 255.0, 123.0 / 255.0, 113.9 / 255.0},
                    {63.0 / 255.0, 62.1 / 255.0, 66.7 / 255.0}},
    // ImageNet statistics (torchvision's pretrained models)
    {"imagenet", 3, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}},
};
// clang-format on

bool augment_normalisation(const char *dataset, struct augment *a)
{
    for (size_t i = 0; i < sizeof norm_table / sizeof norm_table[0]; i++) {
        const struct norm_entry *e = &norm_table[i];
        if (strcmp(dataset, e->name) != 0) continue;
        struct augment r = augment_none();
        // A 1-channel entry fills every slot, so it also serves grey images replicated to RGB.
        for (size_t c = 0; c < AUGMENT_MAX_CHANNELS; c++) {
            size_t k = c < e->channels ? c : e->channels - 1;
            r.mean[c] = (float)e->mean[k];
            r.std[c] = (float)e->std[k];
        }
        *a = r;
        return true;
    }
    return false;
}

// ---------------------------------------------------------------------------------------------
// Crop, flip, normalise.

// numpy/torch "reflect" index: the edge is not repeated (-1 -> 1, n -> n-2). Valid for
// -n < i < 2n - 1, which pad < n guarantees.
static size_t reflect_index(ptrdiff_t i, size_t n)
{
    if (i < 0) return (size_t)(-i);
    if ((size_t)i >= n) return 2 * (n - 1) - (size_t)i;
    return (size_t)i;
}

// One output row. Crop column x reads source column reflect(x + dx): [0, xa) from the left
// reflection (column xa - x, as xa = -dx there), [xa, xb) straight from the row, [xb, W) from the
// right reflection (dx > 0 there). With the flip, crop column x lands in output column W-1-x
// (torchvision flips after cropping).
//   row: (W) source bytes;  out: (W) written;  lut: (256) normalised value of each byte.
static void crop_row(const uint8_t *row, float *out, size_t W, ptrdiff_t dx, size_t xa, size_t xb,
                     bool flip, const float *lut)
{
    float *o = flip ? out + W - 1 : out;
    const ptrdiff_t step = flip ? -1 : 1;
    size_t x = 0;
    for (; x < xa; x++, o += step)
        *o = lut[row[xa - x]];
    const uint8_t *mid = row + (size_t)((ptrdiff_t)xa + dx); // source of crop column xa
    for (size_t j = 0; j < xb - xa; j++, o += step)
        *o = lut[mid[j]];
    for (x = xb; x < W; x++, o += step)
        *o = lut[row[2 * (W - 1) - x - (size_t)dx]];
}

void augment_image(const struct augment *a, struct shape s, const uint8_t *src, float *dst,
                   struct rng *rng)
{
    const size_t C = s.c, H = s.h, W = s.w, pad = a->crop_pad;
    EG_ASSERT(C >= 1 && C <= AUGMENT_MAX_CHANNELS && H >= 1 && W >= 1);
    EG_ASSERT(pad < H && pad < W);

    // Draws in a fixed order: crop row offset, crop column offset, then flip (1 flips).
    size_t oy = pad, ox = pad; // the centred crop when crop is off
    bool flip = false;
    if (pad > 0) {
        EG_ASSERT(rng != NULL);
        oy = (size_t)rng_below(rng, 2 * pad + 1);
        ox = (size_t)rng_below(rng, 2 * pad + 1);
    }
    if (a->hflip) {
        EG_ASSERT(rng != NULL);
        flip = rng_below(rng, 2) == 1;
    }

    // Crop pixel (y, x) reads padded pixel (y + oy, x + ox), i.e. source (y + dy, x + dx),
    // reflected into the image.
    const ptrdiff_t dy = (ptrdiff_t)oy - (ptrdiff_t)pad, dx = (ptrdiff_t)ox - (ptrdiff_t)pad;
    const size_t xa = dx < 0 ? (size_t)(-dx) : 0;
    const size_t xb = dx > 0 ? W - (size_t)dx : W;

    for (size_t c = 0; c < C; c++) {
        // torchvision: ToTensor's x.div(255) then Normalize's sub_(mean).div_(std), all float32
        float lut[256];
        for (int v = 0; v < 256; v++)
            lut[v] = ((float)v / 255.0f - a->mean[c]) / a->std[c];
        const uint8_t *plane = src + c * H * W;
        float *out = dst + c * H * W;
        for (size_t y = 0; y < H; y++) {
            const uint8_t *row = plane + reflect_index((ptrdiff_t)y + dy, H) * W;
            crop_row(row, out + y * W, W, dx, xa, xb, flip, lut);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation: Pillow's Image.rotate (PIL/Image.py) and ImagingTransformAffine
// (src/libImaging/Geometry.c, python-pillow/Pillow; checked against Pillow 9.4.0).
//
// Image.rotate(angle): angle %= 360 (Python modulo); 0 copies, 180 transposes, and 90 / 270
// transpose when the image is square. Otherwise a = -radians(angle) and the inverse matrix is
// [cos a, sin a, c, -sin a, cos a, f], each coefficient round(., 15), with
// (c, f) = (m0*(-cx) + m1*(-cy) + 0, m3*(-cx) + m4*(-cy) + 0) + (cx, cy), centre (w/2, h/2).
// ImagingTransformAffine with NEAREST then picks one of three loops:
//   - m1 == 0 and m3 == 0: ImagingScaleAffine, doubles stepped by m0 / m4, COORD truncation;
//   - all four corners map inside +-32768: affine_fixed, 16.16 fixed point, where
//     FIX(v) = floor(v * 65536 + 0.5) and the start is FIX(c + m0/2 + m1/2) (pixel centres);
//   - else the same stepping in doubles.
// Output pixels whose source falls outside get the fill, 0.

#define PI_DOUBLE 3.141592653589793238462643383279502884

// Python's round(x, 15): the double nearest to x correctly rounded to 15 decimals. glibc's
// printf rounds exactly, as Python's dtoa does.
static double round15(double x)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

// Python's float % 360.0: the result has the sign of the divisor.
static double py_mod360(double x)
{
    double m = fmod(x, 360.0);
    if (m != 0.0) {
        if (m < 0.0) m += 360.0;
    } else {
        m = 0.0;
    }
    return m;
}

// PIL's check_fixed: corner (x, y) maps within the range of 16.16 fixed point.
static bool fixed_ok(const double m[6], double x, double y)
{
    return fabs(x * m[0] + y * m[1] + m[2]) < 32768.0 && fabs(x * m[3] + y * m[4] + m[5]) < 32768.0;
}

// Copies source pixel (yin, xin) of every channel to output pixel (y, x).
static void copy_pixel(const uint8_t *src, uint8_t *dst, struct shape s, size_t y, size_t x,
                       size_t yin, size_t xin)
{
    const size_t plane = s.h * s.w;
    for (size_t c = 0; c < s.c; c++)
        dst[c * plane + y * s.w + x] = src[c * plane + yin * s.w + xin];
}

// PIL's COORD: -1 for negative values, else truncation (a floor).
static long coord(double v)
{
    return v < 0.0 ? -1 : (long)v;
}

// ImagingScaleAffine (m1 == m3 == 0). dst is zeroed by the caller.
static void rotate_scale(const uint8_t *src, uint8_t *dst, struct shape s, const double m[6])
{
    const long W = (long)s.w, H = (long)s.h;
    double yo = m[5] + m[4] * 0.5;
    for (long y = 0; y < H; y++, yo += m[4]) {
        long yi = coord(yo);
        if (yi < 0 || yi >= H) continue;
        double xo = m[2] + m[0] * 0.5;
        for (long x = 0; x < W; x++, xo += m[0]) {
            long xi = coord(xo);
            if (xi >= 0 && xi < W)
                copy_pixel(src, dst, s, (size_t)y, (size_t)x, (size_t)yi, (size_t)xi);
        }
    }
}

// PIL's FIX: 16.16 fixed point, rounded half up.
static int64_t fix16(double v)
{
    return (int64_t)floor(v * 65536.0 + 0.5);
}

// affine_fixed: positions stepped in 16.16 fixed point; the integer part (xx >> 16, a floor) is
// the source pixel. int64_t where PIL uses int: identical results, no overflow at the range edge.
static void rotate_fixed(const uint8_t *src, uint8_t *dst, struct shape s, const double m[6])
{
    const int64_t W = (int64_t)s.w, H = (int64_t)s.h;
    const int64_t a0 = fix16(m[0]), a1 = fix16(m[1]), a3 = fix16(m[3]), a4 = fix16(m[4]);
    int64_t a2 = fix16(m[2] + m[0] * 0.5 + m[1] * 0.5);
    int64_t a5 = fix16(m[5] + m[3] * 0.5 + m[4] * 0.5);
    for (int64_t y = 0; y < H; y++, a2 += a1, a5 += a4) {
        int64_t xx = a2, yy = a5;
        for (int64_t x = 0; x < W; x++, xx += a0, yy += a3) {
            // A negative position is outside; dividing non-negatives avoids relying on >> of
            // negative numbers (implementation-defined in C).
            if (xx < 0 || yy < 0) continue;
            int64_t xin = xx / 65536, yin = yy / 65536;
            if (xin < W && yin < H)
                copy_pixel(src, dst, s, (size_t)y, (size_t)x, (size_t)yin, (size_t)xin);
        }
    }
}

// The floating-point loop for images too large for 16.16 fixed point.
static void rotate_float(const uint8_t *src, uint8_t *dst, struct shape s, const double m[6])
{
    const long W = (long)s.w, H = (long)s.h;
    double xo = m[2] + m[1] * 0.5 + m[0] * 0.5;
    double yo = m[5] + m[4] * 0.5 + m[3] * 0.5;
    for (long y = 0; y < H; y++, xo += m[1], yo += m[4]) {
        double xx = xo, yy = yo;
        for (long x = 0; x < W; x++, xx += m[0], yy += m[3]) {
            long xin = coord(xx), yin = coord(yy);
            if (xin >= 0 && xin < W && yin >= 0 && yin < H) {
                copy_pixel(src, dst, s, (size_t)y, (size_t)x, (size_t)yin, (size_t)xin);
            }
        }
    }
}

void augment_rotate_u8(const uint8_t *src, uint8_t *dst, struct shape s, double degrees)
{
    const size_t n = shape_numel(s), W = s.w, H = s.h, plane = H * W;
    EG_ASSERT(n > 0 && isfinite(degrees));
    EG_ASSERT((uintptr_t)src + n <= (uintptr_t)dst || (uintptr_t)dst + n <= (uintptr_t)src);

    const double angle = py_mod360(degrees);
    // Image.rotate's fast paths (Transpose.ROTATE_180 / ROTATE_90 / ROTATE_270).
    if (angle == 0.0) {
        memcpy(dst, src, n);
        return;
    }
    if (angle == 180.0 || ((angle == 90.0 || angle == 270.0) && W == H)) {
        for (size_t c = 0; c < s.c; c++) {
            const uint8_t *in = src + c * plane;
            uint8_t *out = dst + c * plane;
            for (size_t y = 0; y < H; y++) {
                for (size_t x = 0; x < W; x++) {
                    size_t k = angle == 180.0  ? (H - 1 - y) * W + (W - 1 - x)
                               : angle == 90.0 ? x * W + (W - 1 - y)  // counter-clockwise
                                               : (W - 1 - x) * W + y; // clockwise
                    out[y * W + x] = in[k];
                }
            }
        }
        return;
    }

    // The inverse matrix, evaluated in the same order as Image.rotate (Python's math.radians is
    // x * (pi / 180)).
    const double a = -(angle * (PI_DOUBLE / 180.0));
    double m[6] = {round15(cos(a)), round15(sin(a)), 0.0, round15(-sin(a)), round15(cos(a)), 0.0};
    const double cx = (double)W / 2.0, cy = (double)H / 2.0;
    m[2] = m[0] * -cx + m[1] * -cy + 0.0;
    m[5] = m[3] * -cx + m[4] * -cy + 0.0;
    m[2] += cx;
    m[5] += cy;

    memset(dst, 0, n);
    if (m[1] == 0.0 && m[3] == 0.0) {
        rotate_scale(src, dst, s, m);
    } else if (fixed_ok(m, 0, 0) && fixed_ok(m, (double)W, (double)H) &&
               fixed_ok(m, 0, (double)H) && fixed_ok(m, (double)W, 0)) {
        rotate_fixed(src, dst, s, m);
    } else {
        rotate_float(src, dst, s, m);
    }
}
