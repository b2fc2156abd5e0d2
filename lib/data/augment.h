/* augment.h - turning 8-bit images into normalised float inputs, with the paper's
 * augmentations: random crop with reflect padding and random horizontal flip (CIFAR in the
 * label-noise experiment), per-channel normalisation (x/255 - mean) / std, and the fixed
 * rotation that makes the rotation experiment's validation and test sets (PIL Image.rotate:
 * counter-clockwise about the image centre, nearest neighbour, zero fill). */
#ifndef EG_AUGMENT_H
#define EG_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nn/layer.h"

struct rng;

#define AUGMENT_MAX_CHANNELS 4

struct augment {
    size_t crop_pad; // random crop of the original size after reflect-padding by this much; 0 off
    bool hflip;      // flip left-right with probability 1/2
    float mean[AUGMENT_MAX_CHANNELS], std[AUGMENT_MAX_CHANNELS]; // per channel, of x/255
};

// No augmentation, mean 0 and std 1 (plain x/255).
struct augment augment_none(void);
// Normalisation constants by dataset name ("mnist", "fashion_mnist", "cifar10", "cifar100",
// "imagenet"); false when unknown (a is then untouched). Crop and flip stay off. A one-channel
// dataset's constants fill every channel slot (grey images expanded to RGB still work).
bool augment_normalisation(const char *dataset, struct augment *a);

// dst: (s.c, s.h, s.w) floats written from src: (s.c, s.h, s.w) bytes. Draws from rng in a
// fixed order (crop row, crop column, then flip: rng_below(2) == 1 flips, after the crop, as
// torchvision orders them) only for the augmentations that are on; rng may be NULL when both are
// off. Normalisation follows torchvision's float32 steps (x/255 - mean) / std bit for bit.
// Requires s.c <= AUGMENT_MAX_CHANNELS and crop_pad < s.h, s.w (reflect padding, EG_ASSERT).
void augment_image(const struct augment *a, struct shape s, const uint8_t *src, float *dst,
                   struct rng *rng);

// dst: (s.c, s.h, s.w) written with src rotated by `degrees` counter-clockwise about the image
// centre, nearest neighbour, zero where the rotated image has no source pixel: Pillow's
// Image.rotate(degrees) with resample NEAREST and fill 0, reproduced down to its 16.16
// fixed-point sampling (augment.c), so ties round as Pillow's do. Any multiple of 360 is the
// identity. degrees finite; src and dst must not overlap (EG_ASSERT).
void augment_rotate_u8(const uint8_t *src, uint8_t *dst, struct shape s, double degrees);

#endif // EG_AUGMENT_H
