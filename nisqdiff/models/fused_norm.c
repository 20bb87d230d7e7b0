/* A ResBlock's GroupNorm, time scale and shift, and SiLU in three passes over each channels-last image (in
   cache), for sampling (nisqdiff/models/fused.py; no backward). */
#include "fused.h"

/* y = silu(GroupNorm(x) * (1 + scale) + shift) for channels-last x, y (n, p, c) in groups of c / groups
   channels (statistics over positions and the group's channels, biased variance, eps); gamma, beta (c);
   scale, shift (n, c), or NULL for none (the ResBlock's second norm). */
int group_norm_silu(const float *x, long n, int p, int c, int groups, const float *gamma, const float *beta,
                    const float *scale, const float *shift, float eps, float *y, int threads) {
    if (c > MAXC || groups <= 0 || c % groups) return 1;
    const int gs = c / groups;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long b = 0; b < n; b++) {
        const float *xb = x + b * p * c;
        float *yb = y + b * p * c;
        float sum[MAXC] = {0}, mean[MAXC], sq[MAXC] = {0}, a[MAXC], s[MAXC];
        for (int i = 0; i < p; i++)
            for (int k = 0; k < c; k++) sum[k] += xb[i * c + k];
        for (int g = 0; g < groups; g++) {
            float t = 0.f;
            for (int k = g * gs; k < (g + 1) * gs; k++) t += sum[k];
            for (int k = g * gs; k < (g + 1) * gs; k++) mean[k] = t / ((float)p * gs);
        }
        for (int i = 0; i < p; i++)
            for (int k = 0; k < c; k++) { const float d = xb[i * c + k] - mean[k]; sq[k] += d * d; }
        for (int g = 0; g < groups; g++) {
            float t = 0.f;
            for (int k = g * gs; k < (g + 1) * gs; k++) t += sq[k];
            const float rstd = 1.f / sqrtf(t / ((float)p * gs) + eps);
            for (int k = g * gs; k < (g + 1) * gs; k++) {
                const float m = scale ? 1.f + scale[b * c + k] : 1.f, sh = shift ? shift[b * c + k] : 0.f;
                a[k] = rstd * gamma[k] * m;  /* y = silu(x a + s) */
                s[k] = (beta[k] - mean[k] * rstd * gamma[k]) * m + sh;
            }
        }
        for (int i = 0; i < p; i++)
            for (int k = 0; k < c; k++) yb[i * c + k] = xb[i * c + k] * a[k] + s[k];
        int i = 0;  /* silu(v) = v / (1 + exp(-v)), VW values at a time over the image */
        for (; i + VW <= p * c; i += VW) {
            const vf v = load(yb + i);
            store(yb + i, v / (1.f + vexp(-v)));
        }
        for (; i < p * c; i++) yb[i] = yb[i] / (1.f + expf(-yb[i]));
    }
    return 0;
}
