/* The forward pass: <Z_q> of every input (see chain_kernel.h). */
#include "chain_kernel.h"

/* k[(e, x)][(f, y)] = sum over the closed bits of t[e][x] conj(t[f][y]), x and y the open bit (``mask``), for
 * the n bond entries e, f of a site t (n, P): its gram over the closed qubits, (2n, 2n) */
static void open_gram(const cv *t, int n, const int *closed, int mask, cv *k) {
  for (int e = 0; e < n; e++)
    for (int x = 0; x < 2; x++)
      for (int f = 0; f < n; f++)
        for (int y = 0; y < 2; y++) {
          cv acc = {{0}, {0}};
          for (int q = 0; q < 8; q++)
            cmac_conj(&acc, t[e * P + (closed[q] | (x ? mask : 0))], t[f * P + (closed[q] | (y ? mask : 0))]);
          k[(e * 2 + x) * (2 * n) + f * 2 + y] = acc;
        }
}

/* <Z> of every qubit of one block of W inputs. ops: n_ops x (kind, s, t, mask, matrix index); kind 0 =
 * local on site s, 1 = controlled (control site s, target t, control bit mask). open_mask[c]: the bit
 * of site c's open qubit; obs (3, 8, 8, 2): obs[k][j][i] of the deferred block's observables. */
static void block(const float *init_re, const float *init_im, int n_valid, const int *ops, int n_ops,
                  const float *mats, const int *open_mask, const float *obs, float *out, site_t *sites,
                  site_t *tmp) {
  load_init(init_re, init_im, n_valid, sites);
  evolve(sites, tmp, ops, n_ops, mats, 0);
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
  open_gram(s0->t, da, closed[0], open_mask[0], K0);
  open_gram(s1->t, da * db, closed[1], open_mask[1], K1); /* entry (a, b) of site 1 is a * db + b */
  open_gram(s2->t, db, closed[2], open_mask[2], K2);
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

