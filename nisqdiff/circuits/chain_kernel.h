/* Exact chain simulation of a 3-site circuit (HQConv) for many inputs at once: the definitions shared by
 * chain_forward.c and chain_backward.c.
 *
 * The same computation as nisqdiff/circuits/chain.py (_evolve_chain with the final block deferred, then
 * _marginals and _open_density), written per input with 8 or 16 inputs in the lanes of one vector
 * register, so that the tiny per-input matrix products run at SIMD width instead of as batched GEMM
 * calls. Driven by an op list prepared in Python (chain.py): local 16x16 blocks and controlled gates
 * between neighbouring sites, then one open qubit per site for the deferred final block.
 * Built on first use by nisqdiff/circuits/native.py (cc -O3 -march=native -fopenmp); loaded with ctypes.
 */
#ifndef NISQDIFF_CHAIN_KERNEL_H
#define NISQDIFF_CHAIN_KERNEL_H
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) && !defined(LANES)
#define LANES 16
#endif
#ifndef LANES
#define LANES 8
#endif
#define W LANES /* inputs per vector: 16 with AVX-512, else 8 (AVX2; narrower units split the vector) */
#define P 16    /* physical dimension of a site (4 qubits) */
#define MAXD 8  /* largest bond */
typedef float vf __attribute__((vector_size(4 * W)));
typedef struct { vf re, im; } cv;

static inline cv cmul(float mr, float mi, cv x) {  /* scalar m times vector x */
  cv y = {mr * x.re - mi * x.im, mr * x.im + mi * x.re};
  return y;
}
static inline void cmac_conj(cv *acc, cv a, cv b) {  /* acc += a * conj(b) */
  acc->re += a.re * b.re + a.im * b.im;
  acc->im += a.im * b.re - a.re * b.im;
}
static inline void cmac(cv *acc, cv a, cv b) {  /* acc += a * b */
  acc->re += a.re * b.re - a.im * b.im;
  acc->im += a.re * b.im + a.im * b.re;
}

typedef struct { int dl, dr; cv t[MAXD * MAXD * P]; } site_t; /* t[(l * dr + r) * P + p] */

/* An op's sparsity pattern (pt): 17 row starts, then the column of each structurally nonzero entry, row by row.
 * HQConv's blocks are sparse (a channel's block 81 of 256 entries, a controlled rotation 32): only those entries
 * are multiplied, and (backward) only their gradients are summed; the others are zero for every weight. */
static inline void apply_local(cv *x, const float *m, const int *pt, cv *tmp) { /* x (P) <- M x, M (P, P, 2) row-major */
  const int *col = pt + P + 1;
  for (int i = 0; i < P; i++) {
    cv acc = {{0}, {0}};
    for (int k = pt[i]; k < pt[i + 1]; k++) {
      const int j = col[k];
      cv y = cmul(m[(i * P + j) * 2], m[(i * P + j) * 2 + 1], x[j]);
      acc.re += y.re; acc.im += y.im;
    }
    tmp[i] = acc;
  }
  memcpy(x, tmp, sizeof(cv) * P);
}

/* |0><0|_ctrl (x) I + |1><1|_ctrl (x) R on sites s (control, bit mask `mask` of p) and t = s +- 1 */
static inline void apply_controlled(site_t *sites, int s, int t, int mask, const float *rot, const int *pt,
                                    site_t *tmp) {
  site_t *a = &sites[s], *b = &sites[t];
  cv scratch[P];
  const cv zero = {{0}, {0}};
  /* control site: split by the control bit into the shared bond */
  tmp->dl = s < t ? a->dl : a->dl * 2;
  tmp->dr = s < t ? a->dr * 2 : a->dr;
  for (int l = 0; l < a->dl; l++)
    for (int r = 0; r < a->dr; r++)
      for (int k = 0; k < 2; k++) {
        int nl = s < t ? l : l * 2 + k, nr = s < t ? r * 2 + k : r;
        cv *dst = &tmp->t[(nl * tmp->dr + nr) * P], *src = &a->t[(l * a->dr + r) * P];
        for (int p = 0; p < P; p++) dst[p] = ((p & mask) != 0) == k ? src[p] : zero;
      }
  a->dl = tmp->dl, a->dr = tmp->dr;
  memcpy(a->t, tmp->t, sizeof(cv) * P * a->dl * a->dr);
  /* target site: unchanged for bit 0, rotated for bit 1 */
  tmp->dl = s < t ? b->dl * 2 : b->dl;
  tmp->dr = s < t ? b->dr : b->dr * 2;
  for (int l = 0; l < b->dl; l++)
    for (int r = 0; r < b->dr; r++)
      for (int k = 0; k < 2; k++) {
        int nl = s < t ? l * 2 + k : l, nr = s < t ? r : r * 2 + k;
        cv *dst = &tmp->t[(nl * tmp->dr + nr) * P], *src = &b->t[(l * b->dr + r) * P];
        memcpy(dst, src, sizeof(cv) * P);
        if (k) apply_local(dst, rot, pt, scratch);
      }
  b->dl = tmp->dl, b->dr = tmp->dr;
  memcpy(b->t, tmp->t, sizeof(cv) * P * b->dl * b->dr);
}

/* gram over the physical index: g[a][a'] = sum_p x[a][p] conj(x[a'][p]), x (n, P) */
static inline void gram(const cv *x, int n, cv *g) {
  for (int a = 0; a < n; a++)
    for (int c = 0; c < n; c++) {
      cv acc = {{0}, {0}};
      for (int p = 0; p < P; p++) cmac_conj(&acc, x[a * P + p], x[c * P + p]);
      g[a * n + c] = acc;
    }
}

/* The encoded product state of each site from the input angles x (n, 12), qubit 4 c + j of site c at bit
 * 3 - j of its physical index: RX(x)|0> = (cos(x/2), -i sin(x/2)), so amplitude p is (-i)^popcount(p) times
 * the real product of cos or sin over the site's four qubits. Lanes past n_valid repeat input 0. The half
 * angles' cos and sin (3, 4) per lane go to cs, sn for the backward. */
static inline void load_angles(const float *x, int n_valid, site_t *sites, vf cs[12], vf sn[12]) {
  for (int q = 0; q < 12; q++)
    for (int w = 0; w < W; w++) {
      float h = 0.5f * x[(w < n_valid ? w : 0) * 12 + q];
      cs[q][w] = cosf(h), sn[q][w] = sinf(h);
    }
  for (int c = 0; c < 3; c++) {
    sites[c].dl = sites[c].dr = 1;
    for (int p = 0; p < P; p++) {
      vf m = (p & 8 ? sn : cs)[4 * c];
      for (int j = 1; j < 4; j++) m *= (p & (8 >> j) ? sn : cs)[4 * c + j];
      const vf zero = {0};
      switch (__builtin_popcount(p) & 3) { /* (-i)^k */
        case 0: sites[c].t[p].re = m, sites[c].t[p].im = zero; break;
        case 1: sites[c].t[p].re = zero, sites[c].t[p].im = -m; break;
        case 2: sites[c].t[p].re = -m, sites[c].t[p].im = zero; break;
        default: sites[c].t[p].re = zero, sites[c].t[p].im = m;
      }
    }
  }
}

static inline void copy_site(site_t *dst, const site_t *src) {
  dst->dl = src->dl, dst->dr = src->dr;
  memcpy(dst->t, src->t, sizeof(cv) * P * src->dl * src->dr);
}

/* run the ops (rows of OPW ints: kind, s, t, mask, matrix index, offset of its pattern in pats); with a tape,
 * keep the sites each op changes as they were before it (tape[2 o], tape[2 o + 1]) */
#define OPW 6
static inline void evolve(site_t *sites, site_t *tmp, const int *ops, int n_ops, const float *mats, const int *pats,
                          site_t *tape) {
  cv scratch[P];
  for (int o = 0; o < n_ops; o++) {
    const int *op = &ops[o * OPW], *pt = &pats[op[5]];
    const float *m = &mats[(long)op[4] * P * P * 2];
    if (tape) {
      copy_site(&tape[2 * o], &sites[op[1]]);
      if (op[0]) copy_site(&tape[2 * o + 1], &sites[op[2]]);
    }
    if (op[0] == 0) {
      site_t *st = &sites[op[1]];
      for (int lr = 0; lr < st->dl * st->dr; lr++) apply_local(&st->t[lr * P], m, pt, scratch);
    } else {
      apply_controlled(sites, op[1], op[2], op[3], m, pt, tmp);
    }
  }
}

#endif
