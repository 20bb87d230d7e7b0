/* The readout of the evolved chain (see chain_kernel.h): <Z_q> of every qubit from the three sites and the
 * deferred block's observables, keeping the environments (grams) that chain_backward.c differentiates.
 *
 * Sites s0[a][p], s1[a][b][p], s2[b][p] (bonds da, db): psi(p0 p1 p2) = sum_ab s0[a][p0] s1[a][b][p1] s2[b][p2].
 * The qubits read from the state: rho_c[p] of each site (L, R the grams of the end sites, M, N their
 * environments of the middle one). The open qubits (one per site, the deferred block's): the open grams
 * K0, K1, K2 over each site's closed qubits, Q = K0 K1, rho_open = Q K2. In every gram the first index is
 * the unconjugated ("ket") one. */
#ifndef NISQDIFF_CHAIN_READOUT_H
#define NISQDIFF_CHAIN_READOUT_H
#include "chain_kernel.h"

typedef struct {
  int da, db, n0, n1, n2; /* bonds 0|1 and 1|2; the open grams' sizes 2 da, 2 da db, 2 db */
  int jo[3];              /* the open qubit of each site (0 = the site's first qubit) */
  int closed[3][8];       /* the eight physical indices of each site with its open bit 0 */
  cv L[MAXD * MAXD], R[MAXD * MAXD], M[MAXD * MAXD], N[MAXD * MAXD];
  cv K0[4 * MAXD * MAXD], K2[4 * MAXD * MAXD], K1[(2 * MAXD * MAXD) * (2 * MAXD * MAXD)];
  cv Q[16 * MAXD * MAXD]; /* Q[x0 y0 x1 y1][b][b'] */
  cv rho[8][8];           /* rho_open[x][y] = sum psi_x conj(psi_y), x = (x0 x1 x2) */
} readout_t;

/* k[(e, x)][(f, y)] = sum over the closed bits of t[e][x] conj(t[f][y]), x and y the open bit (``mask``), for
 * the n bond entries e, f of a site t (n, P): its gram over the closed qubits, (2n, 2n), Hermitian (the upper
 * triangle is computed, the lower one mirrored) */
static inline void open_gram(const cv *t, int n, const int *closed, int mask, cv *k) {
  for (int i = 0; i < 2 * n; i++) {
    const cv *ti = &t[(i >> 1) * P];
    const int mi = i & 1 ? mask : 0;
    for (int j = i; j < 2 * n; j++) {
      const cv *tj = &t[(j >> 1) * P];
      const int mj = j & 1 ? mask : 0;
      cv acc = {{0}, {0}};
      for (int q = 0; q < 8; q++) cmac_conj(&acc, ti[closed[q] | mi], tj[closed[q] | mj]);
      k[j * 2 * n + i].re = acc.re, k[j * 2 * n + i].im = -acc.im;
      k[i * 2 * n + j] = acc;
    }
  }
}

/* Re(m x conj(y)) */
static inline vf re_mxy(cv m, cv x, cv y) {
  vf re = x.re * y.re + x.im * y.im, im = x.im * y.re - x.re * y.im;
  return m.re * re - m.im * im;
}

/* <Z> of every qubit of one vector of inputs into z[12]; env keeps the grams. open_mask[c]: the bit of
 * site c's open qubit; obs (3, 8, 8, 2): obs[k][j][i] of the deferred block's observables. */
static inline void readout(const site_t *sites, const int *open_mask, const float *obs, vf *z, readout_t *env) {
  const site_t *s0 = &sites[0], *s1 = &sites[1], *s2 = &sites[2];
  int da = s0->dr, db = s1->dr;
  env->da = da, env->db = db, env->n0 = 2 * da, env->n1 = 2 * da * db, env->n2 = 2 * db;
  static __thread cv u[MAXD * MAXD * P], v[MAXD * MAXD * P];
  gram(s0->t, da, env->L); /* L[a][a'] */
  gram(s2->t, db, env->R); /* R[b][b'] */
  /* u[a][b'][p] = sum_b s1[a][b][p] R[b][b'];  v[a'][b][p] = sum_a L[a][a'] s1[a][b][p] */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) {
        cv acc = {{0}, {0}}, acc2 = {{0}, {0}};
        for (int b = 0; b < db; b++) cmac(&acc, s1->t[(a * db + b) * P + p], env->R[b * db + c]);
        for (int b = 0; b < da; b++) cmac(&acc2, env->L[b * da + a], s1->t[(b * db + c) * P + p]);
        u[(a * db + c) * P + p] = acc;
        v[(a * db + c) * P + p] = acc2;
      }
  /* M[a][a'] = sum_{b',p} u[a][b'][p] conj(s1[a'][b'][p]);  N[b][b'] = sum_{a,p} v[a][b][p] conj(s1[a][b'][p]) */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < da; c++) {
      cv acc = {{0}, {0}};
      for (int b = 0; b < db; b++)
        for (int p = 0; p < P; p++) cmac_conj(&acc, u[(a * db + b) * P + p], s1->t[(c * db + b) * P + p]);
      env->M[a * da + c] = acc;
    }
  for (int b = 0; b < db; b++)
    for (int c = 0; c < db; c++) {
      cv acc = {{0}, {0}};
      for (int a = 0; a < da; a++)
        for (int p = 0; p < P; p++) cmac_conj(&acc, v[(a * db + b) * P + p], s1->t[(a * db + c) * P + p]);
      env->N[b * db + c] = acc;
    }
  vf rho[3][P];
  memset(rho, 0, sizeof(rho));
  /* rho1[p] = Re sum_{a',b'} (sum_b v[a'][b][p] R[b][b']) conj(s1[a'][b'][p]) */
  for (int a = 0; a < da; a++)
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) {
        cv acc = {{0}, {0}};
        for (int b = 0; b < db; b++) cmac(&acc, v[(a * db + b) * P + p], env->R[b * db + c]);
        cv s = s1->t[(a * db + c) * P + p];
        rho[1][p] += acc.re * s.re + acc.im * s.im;
      }
  for (int a = 0; a < da; a++) /* rho0[p] = Re sum_{a,a'} M[a][a'] s0[a][p] conj(s0[a'][p]) */
    for (int c = 0; c < da; c++)
      for (int p = 0; p < P; p++) rho[0][p] += re_mxy(env->M[a * da + c], s0->t[a * P + p], s0->t[c * P + p]);
  for (int a = 0; a < db; a++) /* rho2[p] = Re sum_{b,b'} N[b][b'] s2[b][p] conj(s2[b'][p]) */
    for (int c = 0; c < db; c++)
      for (int p = 0; p < P; p++) rho[2][p] += re_mxy(env->N[a * db + c], s2->t[a * P + p], s2->t[c * P + p]);
  for (int c = 0; c < 3; c++)
    for (int j = 0; j < 4; j++) {
      vf acc = {0};
      int bit = 8 >> j;
      for (int p = 0; p < P; p++) acc += (p & bit) ? -rho[c][p] : rho[c][p];
      z[c * 4 + j] = acc;
    }
  /* the open qubits: K0[(a,x)][(a',y)], K1[(a,b,x)][(a',b',y)], K2[(b,x)][(b',y)] over the closed bits,
   * then rho_open[x0 x1 x2][y0 y1 y2] = sum K0 K1 K2 */
  for (int c = 0; c < 3; c++) {
    env->jo[c] = open_mask[c] == 8 ? 0 : open_mask[c] == 4 ? 1 : open_mask[c] == 2 ? 2 : 3;
    for (int p = 0, n = 0; p < P; p++)
      if (!(p & open_mask[c])) env->closed[c][n++] = p;
  }
  int n0 = env->n0, n1 = env->n1, n2 = env->n2;
  open_gram(s0->t, da, env->closed[0], open_mask[0], env->K0);
  open_gram(s1->t, da * db, env->closed[1], open_mask[1], env->K1); /* entry (a, b) of site 1 is a * db + b */
  open_gram(s2->t, db, env->closed[2], open_mask[2], env->K2);
  /* Q[x0 y0 x1 y1][b][c] = sum_{a,e} K0[(a,x0)][(e,y0)] K1[(a,b,x1)][(e,c,y1)]; the grams are Hermitian, so
   * Q[y0 x0 y1 x1][c][b] = conj(Q[x0 y0 x1 y1][b][c]) and rho is Hermitian: half of each is computed */
  for (int i4 = 0; i4 < 16; i4++) {
    const int x0 = i4 >> 3, y0 = (i4 >> 2) & 1, x1 = (i4 >> 1) & 1, y1 = i4 & 1, m4 = y0 * 8 + x0 * 4 + y1 * 2 + x1;
    for (int b = 0; b < db; b++)
      for (int c = 0; c < db; c++) {
        const int at = (i4 * db + b) * db + c, mirror = (m4 * db + c) * db + b;
        if (mirror < at) continue;
        cv acc = {{0}, {0}};
        for (int a = 0; a < da; a++)
          for (int e = 0; e < da; e++)
            cmac(&acc, env->K0[(a * 2 + x0) * n0 + e * 2 + y0], env->K1[((a * db + b) * 2 + x1) * n1 + (e * db + c) * 2 + y1]);
        env->Q[mirror].re = acc.re, env->Q[mirror].im = -acc.im; /* then itself, where it is its own mirror */
        env->Q[at] = acc;
      }
  }
  for (int x = 0; x < 8; x++)
    for (int y = x; y < 8; y++) {
      int x0 = x >> 2, x1 = (x >> 1) & 1, x2 = x & 1, y0 = y >> 2, y1 = (y >> 1) & 1, y2 = y & 1;
      cv acc = {{0}, {0}};
      for (int b = 0; b < db; b++)
        for (int c = 0; c < db; c++)
          cmac(&acc, env->Q[((((x0 * 2 + y0) * 2 + x1) * 2 + y1) * db + b) * db + c], env->K2[(b * 2 + x2) * n2 + c * 2 + y2]);
      env->rho[y][x].re = acc.re, env->rho[y][x].im = -acc.im;
      env->rho[x][y] = acc;
    }
  for (int k = 0; k < 3; k++) { /* <Z_k> = Re sum_ij rho[i][j] obs[k][j][i] */
    vf acc = {0};
    for (int i = 0; i < 8; i++)
      for (int j = 0; j < 8; j++) {
        const float *o = &obs[((k * 8 + j) * 8 + i) * 2];
        acc += env->rho[i][j].re * o[0] - env->rho[i][j].im * o[1];
      }
    z[k * 4 + env->jo[k]] = acc;
  }
}

#endif
