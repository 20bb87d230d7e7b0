/* Shared by the fused kernels (fused_attention.c, fused_norm.c): vectors of VW floats through GCC's vector
   extensions (one AVX-512 register, or one AVX2 register), the shapes they support, and small helpers. */
#ifndef NISQDIFF_FUSED_H
#define NISQDIFF_FUSED_H
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>

#define HID 128 /* heads * dim_head */
#ifdef __AVX512F__
#define VW 16 /* floats per vector: one AVX-512 register */
#else
#define VW 8 /* one AVX2 register: 16-float vectors (two registers each) spill and ran 1.4x slower than torch */
#endif
#define NV (HID / VW) /* vectors per 128 features */
/* accumulators kept in registers at once: one array of CH1 or two of CH2 vectors (AVX-512 has 32 registers,
   AVX2 16: wider loops spill) */
#define CH1 (NV < 8 ? NV : 8)
#define CH2 (VW == 16 ? CH1 : 4)
#define BLK 16  /* positions per block of the key pass */
#define MAXC 64
#define GROUP 4 /* blocks of VW positions per pass over the backward's lane accumulators */

typedef float vf __attribute__((vector_size(VW * 4)));                /* a register of VW floats */
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));   /* the same at any address */
typedef int vi __attribute__((vector_size(VW * 4)));

static inline vf load(const float *p) { return *(const vfu *)p; }
static inline void store(float *p, vf v) { *(vfu *)p = v; }
static inline vf vmax(vf a, vf b) { vi m = a > b; return (vf)(((vi)a & m) | ((vi)b & ~m)); }
static inline vf vmin(vf a, vf b) { vi m = a < b; return (vf)(((vi)a & m) | ((vi)b & ~m)); }

/* exp of each lane: 2^n exp(r) with n = round(x / ln 2) and |r| <= ln 2 / 2, exp(r) by Cephes' expf polynomial
   (relative error about 2e-7); x is clamped to [-87.3, 88.3], so no lane overflows or goes subnormal. Our own
   rather than glibc's vectorised expf, which the compiler only calls under -ffast-math: a library built
   with it sets flush-to-zero for the whole process (gcc 12 links crtfastmath.o), which broke qiskit. */
static inline vf vexp(vf x) {
    const vf round = (vf){} + 12582912.0f;  /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    x = vmin(vmax(x, (vf){} - 87.3f), (vf){} + 88.3f);
    const vf n = (x * 1.44269504088896341f + round) - round;
    const vf r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    vf p = (vf){} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const vf y = p * r * r + r + 1.0f;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return y * (vf)bits;
}

static inline void layer_norm(const float *x, int c, const float *g, float *y) {
    float mean = 0.f, var = 0.f;
    for (int i = 0; i < c; i++) mean += x[i];
    mean /= c;
    for (int i = 0; i < c; i++) { float d = x[i] - mean; var += d * d; }
    float r = 1.f / sqrtf(var / c + 1e-5f);
    for (int i = 0; i < c; i++) y[i] = (x[i] - mean) * r * g[i];
}

static inline float hsum(vf v) {  /* halving: log2(VW) shuffles and adds */
    vi idx;
    for (int w = VW / 2; w >= 1; w /= 2) {
        for (int l = 0; l < VW; l++) idx[l] = l ^ w;
        v += __builtin_shuffle(v, idx);
    }
    return v[0];
}

#endif
