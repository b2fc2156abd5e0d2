/* rotate.h - differentiable rotation of a batch of images by one angle: the spatial transformer
 * of the rotation experiment (paper-spec 3.2), with PyTorch's conventions:
 *   F.grid_sample(x, F.affine_grid([[cos a, -sin a, 0], [sin a, cos a, 0]], x.shape,
 *                 align_corners=False), mode='bilinear', padding_mode='zeros', align_corners=False)
 * Output normalised coordinate (u, v) (u along W, v along H, both in [-1, 1], pixel centres at
 * (2j + 1)/W - 1) samples the input at (u cos a - v sin a, u sin a + v cos a); a normalised
 * coordinate g maps to pixel ((g + 1)*W - 1)/2; bilinear over the 4 neighbouring pixels, and
 * neighbours outside the image read 0.
 * Sign: with rows growing downwards (image convention), a positive angle turns the image content
 * counter-clockwise on the screen about the image centre, like PIL's Image.rotate(+degrees);
 * a = +pi/6 reproduces the rotation experiment's validation and test rotation.
 * Every H x W plane gets the same transform, so the functions work on any N*C planes: the NCHW
 * names below are only a convention, CNHW activations (layer.h) are rotated the same way.
 * Nothing is cached between calls; each call allocates one table of H*W sampling taps (freed
 * before returning). */
#ifndef EG_ROTATE_H
#define EG_ROTATE_H

#include <stddef.h>

// y = x rotated by the angle a (radians), as the grid_sample call above.
//   x: (N, C, H, W) read    y: (N, C, H, W) written (every element)
// Sampling positions are computed in double, once per call; each output is the bilinear
// combination computed in double and rounded once to float. a = 0 is the exact identity.
// Requires N, C, H, W >= 1, a finite, x and y not overlapping (EG_ASSERT). Caller owns both.
void rotate_forward(const float *x, float *y, size_t N, size_t C, size_t H, size_t W, double a);

// Backward of rotate_forward(x, y, N, C, H, W, a) for dy = dL/dy.
//   x: (N, C, H, W) the forward's input    dy: (N, C, H, W) read
//   dx: (N, C, H, W) dL/dx ADDED to (accumulates; zero it first for a plain gradient), or NULL
//       to skip the input gradient
// Returns dL/da = sum over outputs dy * (dy_out/dix * dix/da + dy_out/diy * diy/da), accumulated
// in double, where (ix, iy) is the output's pixel-space sampling position. The output is
// piecewise smooth in a: where a sampling position lies exactly on a pixel row/column, the
// derivative is the one-sided one of the cell that starts there (floor: the side of larger
// index), as PyTorch's.
// Requires the same as rotate_forward; dx must not overlap x or dy (EG_ASSERT).
double rotate_backward(const float *x, const float *dy, float *dx, size_t N, size_t C, size_t H,
                       size_t W, double a);

// The tangent (directional derivative) of rotate_forward along the image's direction tx (NULL:
// none) and the angle's ta: ty = R(tx, a) + ta dR(x, a)/da, (N, C, H, W) written. Same
// requirements as rotate_forward; ty must not overlap x or tx.
void rotate_tangent(const float *x, const float *tx, double ta, float *ty, size_t N, size_t C,
                    size_t H, size_t W, double a);

// The tangent of rotate_backward along tx (NULL: none), ta and tdy, the direction of dy: adds the
// tangent of dL/dx into tdx (unless NULL; tdx = R^T(tdy) + ta (dR^T/da) dy) and returns that of
// dL/da (sum over outputs of tdy dy_out/da + dy d(dy_out/da)/dx . tx + ta dy d^2 y_out/da^2),
// the second derivatives taken within each sampling cell (the sampling is piecewise bilinear).
// tdx must not overlap x, dy or tdy.
double rotate_backward_tangent(const float *x, const float *tx, double ta, const float *dy,
                               const float *tdy, float *tdx, size_t N, size_t C, size_t H,
                               size_t W, double a);

#endif // EG_ROTATE_H
