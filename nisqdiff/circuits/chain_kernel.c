/* Exact chain simulation of a 3-site circuit (HQConv) for many inputs at once, without gradients.
 *
 * The same computation as nisqdiff/circuits/chain.py (_evolve_chain with the final block deferred, then
 * _marginals and _open_density), written per input with eight inputs in the lanes of one vector
 * register, so that the tiny per-input matrix products run at SIMD width instead of as batched GEMM
 * calls. Driven by an op list prepared in Python (chain.py): local 16x16 blocks and controlled gates
 * between neighbouring sites, then one open qubit per site for the deferred final block.
 * Built on first use by nisqdiff/circuits/native.py (gcc -O3 -march=native); loaded with ctypes.
 */
#include <string.h>

#define W 8    /* inputs per vector */
#define P 16   /* physical dimension of a site (4 qubits) */
#define MAXD 8 /* largest bond */
typedef float vf __attribute__((vector_size(32)));
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

static void apply_local(cv *x, const float *m, cv *tmp) { /* x (P) <- M x, M (P, P, 2) row-major */
  for (int i = 0; i < P; i++) {
    cv acc = {{0}, {0}};
    for (int j = 0; j < P; j++) {
      cv y = cmul(m[(i * P + j) * 2], m[(i * P + j) * 2 + 1], x[j]);
      acc.re += y.re; acc.im += y.im;
    }
    tmp[i] = acc;
  }
  memcpy(x, tmp, sizeof(cv) * P);
}

/* |0><0|_ctrl (x) I + |1><1|_ctrl (x) R on sites s (control, bit mask `mask` of p) and t = s +- 1 */
static void apply_controlled(site_t *sites, int s, int t, int mask, const float *rot, site_t *tmp) {
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
        if (k) apply_local(dst, rot, scratch);
      }
  b->dl = tmp->dl, b->dr = tmp->dr;
  memcpy(b->t, tmp->t, sizeof(cv) * P * b->dl * b->dr);
}

/* gram over the physical index: g[a][a'] = sum_p x[a][p] conj(x[a'][p]), x (n, P) */
static void gram(const cv *x, int n, cv *g) {
  for (int a = 0; a < n; a++)
    for (int c = 0; c < n; c++) {
      cv acc = {{0}, {0}};
      for (int p = 0; p < P; p++) cmac_conj(&acc, x[a * P + p], x[c * P + p]);
      g[a * n + c] = acc;
    }
}

/* <Z> of every qubit of one 8-input block. ops: n_ops x (kind, s, t, mask, matrix index); kind 0 =
 * local on site s, 1 = controlled (control site s, target t, control bit mask). open_mask[c]: the bit
 * of site c's open qubit; obs (3, 8, 8, 2): obs[k][j][i] of the deferred block's observables. */
static void block(const float *init_re, const float *init_im, int n_valid, const int *ops, int n_ops,
                  const float *mats, const int *open_mask, const float *obs, float *out, site_t *sites,
                  site_t *tmp) {
  cv scratch[P];
  for (int c = 0; c < 3; c++) { /* product state of each site, (1, 1, P) */
    sites[c].dl = sites[c].dr = 1;
    for (int p = 0; p < P; p++)
      for (int w = 0; w < W; w++) {
        int i = w < n_valid ? w : 0;
        sites[c].t[p].re[w] = init_re[(i * 3 + c) * P + p];
        sites[c].t[p].im[w] = init_im[(i * 3 + c) * P + p];
      }
  }
  for (int o = 0; o < n_ops; o++) {
    const int *op = &ops[o * 5];
    const float *m = &mats[(long)op[4] * P * P * 2];
    if (op[0] == 0) {
      site_t *st = &sites[op[1]];
      for (int lr = 0; lr < st->dl * st->dr; lr++) apply_local(&st->t[lr * P], m, scratch);
    } else {
      apply_controlled(sites, op[1], op[2], op[3], m, tmp);
    }
  }
  site_t *s0 = &sites[0], *s1 = &sites[1], *s2 = &sites[2];
  int da = s0->dr, db = s1->dr; /* bonds 0|1 and 1|2 */
  cv Lg[MAXD * MAXD], Rg[MAXD * MAXD], Mg[MAXD * MAXD], Ng[MAXD * MAXD];
  static __thread cv u[MAXD * MAXD * P], v[MAXD * MAXD * P];
  gram(s0->t, da, Lg); /* L[a][a'] */
  gram(s2->t, db, Rg); /* R[b][b'] */
  /* u[a][b'][p] = sum_b s1[a][b][p] R[b][b'];  v[a'][b][p] = sum_a L[a][a'] s1[a][b][p] */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) {
        cv acc = {{0}, {0}}, acc2 = {{0}, {0}};
        for (int b = 0; b < db; b++) cmac(&acc, s1->t[(a * db + b) * P + p], Rg[b * db + c]);
        for (int b = 0; b < da; b++) cmac(&acc2, Lg[b * da + a], s1->t[(b * db + c) * P + p]);
        u[(a * db + c) * P + p] = acc;
        v[(a * db + c) * P + p] = acc2;
      }
  vf rho[3][P];
  memset(rho, 0, sizeof(rho));
  /* M[a][a'] = sum_{b',p} u[a][b'][p] conj(s1[a'][b'][p]);  rho1[p] = Re sum_{a',b'} v-like term */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < da; c++) {
      cv acc = {{0}, {0}};
      for (int b = 0; b < db; b++)
        for (int p = 0; p < P; p++) cmac_conj(&acc, u[(a * db + b) * P + p], s1->t[(c * db + b) * P + p]);
      Mg[a * da + c] = acc;
    }
  for (int b = 0; b < db; b++)
    for (int c = 0; c < db; c++) {
      cv acc = {{0}, {0}};
      for (int a = 0; a < da; a++)
        for (int p = 0; p < P; p++) cmac_conj(&acc, v[(a * db + b) * P + p], s1->t[(a * db + c) * P + p]);
      Ng[b * db + c] = acc;
    }
  /* rho1[p] = sum_{a,a',b,b'} L[a][a'] s1[a][b][p] conj(s1[a'][b'][p]) R[b][b']
   *         = Re sum_{a',b'} (sum_b v[a'][b][p] R[b][b']) conj(s1[a'][b'][p]) */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) {
        cv acc = {{0}, {0}};
        for (int b = 0; b < db; b++) cmac(&acc, v[(a * db + b) * P + p], Rg[b * db + c]);
        cv s = s1->t[(a * db + c) * P + p];
        rho[1][p] += acc.re * s.re + acc.im * s.im;
      }
  for (int a = 0; a < da; a++) /* rho0[p] = Re sum_{a,a'} M[a][a'] s0[a][p] conj(s0[a'][p]) */
    for (int c = 0; c < da; c++)
      for (int p = 0; p < P; p++) {
        cv x = s0->t[a * P + p], y = s0->t[c * P + p], m = Mg[a * da + c];
        vf re = x.re * y.re + x.im * y.im, im = x.im * y.re - x.re * y.im;
        rho[0][p] += m.re * re - m.im * im;
      }
  for (int a = 0; a < db; a++) /* rho2[p] = Re sum_{b,b'} N[b][b'] s2[b][p] conj(s2[b'][p]) */
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) {
        cv x = s2->t[a * P + p], y = s2->t[c * P + p], m = Ng[a * db + c];
        vf re = x.re * y.re + x.im * y.im, im = x.im * y.re - x.re * y.im;
        rho[2][p] += m.re * re - m.im * im;
      }
  vf z[12];
  for (int c = 0; c < 3; c++)
    for (int j = 0; j < 4; j++) {
      vf acc = {0};
      int bit = 8 >> j;
      for (int p = 0; p < P; p++) acc += (p & bit) ? -rho[c][p] : rho[c][p];
      z[c * 4 + j] = acc;
    }
  /* the open density of one qubit per site: K0[(a,x)][(a',y)], K2[(b,x)][(b',y)] over the closed bits,
   * K1[(a,b,x)][(a',b',y)], then rho[x0 x1 x2][y0 y1 y2] = sum K0 K1 K2 */
  int closed[3][8];
  for (int c = 0; c < 3; c++)
    for (int p = 0, n = 0; p < P; p++)
      if (!(p & open_mask[c])) closed[c][n++] = p;
  cv K0[2 * MAXD * 2 * MAXD], K2[2 * MAXD * 2 * MAXD];
  static __thread cv K1[(2 * MAXD * MAXD) * (2 * MAXD * MAXD)];
  int n0 = 2 * da, n2 = 2 * db, n1 = 2 * da * db;
  for (int a = 0; a < da; a++)
    for (int x = 0; x < 2; x++)
      for (int c = 0; c < da; c++)
        for (int y = 0; y < 2; y++) {
          cv acc = {{0}, {0}};
          for (int q = 0; q < 8; q++)
            cmac_conj(&acc, s0->t[a * P + (closed[0][q] | (x ? open_mask[0] : 0))],
                      s0->t[c * P + (closed[0][q] | (y ? open_mask[0] : 0))]);
          K0[(a * 2 + x) * n0 + c * 2 + y] = acc;
        }
  for (int b = 0; b < db; b++)
    for (int x = 0; x < 2; x++)
      for (int c = 0; c < db; c++)
        for (int y = 0; y < 2; y++) {
          cv acc = {{0}, {0}};
          for (int q = 0; q < 8; q++)
            cmac_conj(&acc, s2->t[b * P + (closed[2][q] | (x ? open_mask[2] : 0))],
                      s2->t[c * P + (closed[2][q] | (y ? open_mask[2] : 0))]);
          K2[(b * 2 + x) * n2 + c * 2 + y] = acc;
        }
  for (int i = 0; i < n1; i++) /* i = (a * db + b) * 2 + x */
    for (int k = 0; k < n1; k++) {
      int ab = i >> 1, x = i & 1, cd = k >> 1, y = k & 1;
      cv acc = {{0}, {0}};
      for (int q = 0; q < 8; q++)
        cmac_conj(&acc, s1->t[ab * P + (closed[1][q] | (x ? open_mask[1] : 0))],
                  s1->t[cd * P + (closed[1][q] | (y ? open_mask[1] : 0))]);
      K1[i * n1 + k] = acc;
    }
  cv Q[4 * 4 * MAXD * MAXD]; /* Q[x0 y0 x1 y1][b b'] = sum_{a,a'} K0[(a,x0)][(a',y0)] K1[(a,b,x1)][(a',b',y1)] */
  memset(Q, 0, sizeof(cv) * 16 * db * db);
  for (int x0 = 0; x0 < 2; x0++)
    for (int y0 = 0; y0 < 2; y0++)
      for (int x1 = 0; x1 < 2; x1++)
        for (int y1 = 0; y1 < 2; y1++)
          for (int b = 0; b < db; b++)
            for (int c = 0; c < db; c++) {
              cv acc = {{0}, {0}};
              for (int a = 0; a < da; a++)
                for (int e = 0; e < da; e++)
                  cmac(&acc, K0[(a * 2 + x0) * n0 + e * 2 + y0], K1[((a * db + b) * 2 + x1) * n1 + (e * db + c) * 2 + y1]);
              Q[((((x0 * 2 + y0) * 2 + x1) * 2 + y1) * db + b) * db + c] = acc;
            }
  cv rho_open[8][8];
  for (int x = 0; x < 8; x++)
    for (int y = 0; y < 8; y++) {
      int x0 = x >> 2, x1 = (x >> 1) & 1, x2 = x & 1, y0 = y >> 2, y1 = (y >> 1) & 1, y2 = y & 1;
      cv acc = {{0}, {0}};
      for (int b = 0; b < db; b++)
        for (int c = 0; c < db; c++)
          cmac(&acc, Q[((((x0 * 2 + y0) * 2 + x1) * 2 + y1) * db + b) * db + c], K2[(b * 2 + x2) * n2 + c * 2 + y2]);
      rho_open[x][y] = acc;
    }
  vf zopen[3];
  for (int k = 0; k < 3; k++) { /* <Z_k> = Re sum_ij rho[i][j] obs[k][j][i] */
    vf acc = {0};
    for (int i = 0; i < 8; i++)
      for (int j = 0; j < 8; j++) {
        const float *o = &obs[((k * 8 + j) * 8 + i) * 2];
        acc += rho_open[i][j].re * o[0] - rho_open[i][j].im * o[1];
      }
    zopen[k] = acc;
  }
  for (int c = 0; c < 3; c++) {
    int j = open_mask[c] == 8 ? 0 : open_mask[c] == 4 ? 1 : open_mask[c] == 2 ? 2 : 3;
    z[c * 4 + j] = zopen[c];
  }
  for (int w = 0; w < n_valid; w++)
    for (int q = 0; q < 12; q++) out[w * 12 + q] = z[q][w];
}

int chain_expval(const float *init_re, const float *init_im, long n, const int *ops, int n_ops,
                 const float *mats, const int *open_mask, const float *obs, float *out, int threads) {
  static __thread site_t sites[3], tmp;
  long blocks = (n + W - 1) / W;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long k = 0; k < blocks; k++) {
    long i = k * W;
    int valid = n - i < W ? (int)(n - i) : W;
    block(init_re + i * 3 * P, init_im + i * 3 * P, valid, ops, n_ops, mats, open_mask, obs, out + i * 12, sites,
          &tmp);
  }
  return 0;
}
