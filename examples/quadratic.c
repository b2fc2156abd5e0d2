/* quadratic.c - a meta-problem of one's own, solved with EvoGrad through libevograd's public
 * API: the paper's 1-D illustration (Bohdal et al. 2021, section 3.1).
 *
 *   theta = x (one weight), lambda (one hyperparameter, an L2 regulariser):
 *   l_T(x, lambda) = (x - 1)^2 + lambda x^2     the training loss
 *   l_V(x)         = (x - 0.5)^2                 the validation loss
 * Training drives x to x*(lambda) = 1 / (1 + lambda), which is 0.5, the validation optimum, at
 * lambda = 1. The exact hypergradient is dl_V(x*(lambda))/dlambda = (lambda - 1) / (lambda + 1)^3.
 *
 * The program prints EvoGrad's hypergradient against that closed form at a few lambdas (the mean
 * over 200 draws at x = x*(lambda)), then learns lambda: alternately a gradient step on x and an
 * EvoGrad step on lambda, from lambda = 0.2, and prints where lambda ends (near 1).
 *
 *   cc quadratic.c $(pkg-config --cflags --libs evograd) -o quadratic && ./quadratic
 * Exit status 0 when lambda ends within 0.05 of 1, else 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <evograd/evograd.h>

static double train_loss(void *ctx, const float *theta, const float *lambda, float *dtheta,
                         float *dlambda)
{
    (void)ctx;
    const double x = theta[0], l = lambda[0];
    if (dtheta != NULL) dtheta[0] = (float)(2 * (x - 1) + 2 * l * x);
    if (dlambda != NULL) dlambda[0] = (float)(x * x);
    return (x - 1) * (x - 1) + l * x * x;
}

static double val_loss(void *ctx, const float *theta, float *dtheta)
{
    (void)ctx;
    const double x = theta[0];
    if (dtheta != NULL) dtheta[0] = (float)(2 * (x - 0.5));
    return (x - 0.5) * (x - 0.5);
}

int main(void)
{
    struct eg_problem problem = {.P = 1, .H = 1, .train_loss = train_loss, .val_loss = val_loss};
    struct eg_hyper_options o;
    eg_hyper_options_default(&o);
    o.candidates = 10;
    o.sigma = 0.5;
    o.temperature = 0.5;
    o.gaussian = true;
    struct eg_hyper *h;
    struct eg_error err;
    if (eg_hyper_new(&o, problem.P, problem.H, &h, &err) != EG_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    printf("libevograd %s, method %s, K = %zu, sigma %g, tau %g\n", eg_version(), o.method,
           o.candidates, o.sigma, o.temperature);
    printf("%8s  %12s  %12s\n", "lambda", "EvoGrad", "exact");
    const float lambdas[] = {0.2f, 0.5f, 1.0f, 1.5f, 2.0f};
    for (size_t i = 0; i < sizeof lambdas / sizeof lambdas[0]; i++) {
        const float lambda = lambdas[i], x = 1.0f / (1.0f + lambda);
        double sum = 0;
        for (int d = 0; d < 200; d++) {
            float hg;
            eg_hypergrad(h, &problem, &x, &lambda, &hg);
            sum += hg;
        }
        printf("%8.2f  %12.4f  %12.4f\n", lambda, sum / 200, (lambda - 1) / pow(lambda + 1, 3));
    }

    float x = 0.0f, lambda = 0.2f;
    for (int step = 0; step < 2000; step++) {
        float gx, hg;
        train_loss(NULL, &x, &lambda, &gx, NULL);
        x -= 0.1f * gx; // the model's step
        eg_hypergrad(h, &problem, &x, &lambda, &hg);
        lambda -= 0.05f * hg; // the hyperparameter's step
    }
    printf("learned lambda %.3f (the validation optimum is 1), x %.3f (0.5)\n", lambda, x);
    eg_hyper_free(h);
    return fabs(lambda - 1.0f) < 0.05 ? 0 : 1;
}
