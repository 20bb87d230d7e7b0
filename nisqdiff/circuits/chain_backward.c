#include <omp.h>

#include "chain_kernel.h"

/* The backward pass: gradients of sum_q gz_q <Z_q> (torch's convention for complex tensors:
 * grad = dL/d(re) + i dL/d(im)) with respect to the initial site states, every op matrix and the
 * deferred block's observables. The readout's gradient goes through the full state psi of each input
 * (4,096 amplitudes): E = <psi| H |psi>, H = sum of the weighted Z's and the weighted observables, and
 * dE/d(conj site) contracts H psi with the other sites' conjugates. The ops are then undone in reverse
 * order from a tape of the sites each op changed. */

static void local_adjoint(cv *g, const cv *x, const float *m, cv *gm) { /* y = M x: g <- M^H g, gm += g x^H */
  cv tmp[P];
  for (int i = 0; i < P; i++)
    for (int j = 0; j < P; j++) cmac_conj(&gm[i * P + j], g[i], x[j]);
  for (int j = 0; j < P; j++) {
    cv acc = {{0}, {0}};
    for (int i = 0; i < P; i++) {
      cv y = cmul(m[(i * P + j) * 2], -m[(i * P + j) * 2 + 1], g[i]);
      acc.re += y.re; acc.im += y.im;
    }
    tmp[j] = acc;
  }
  memcpy(g, tmp, sizeof(cv) * P);
}

static void controlled_adjoint(site_t *g, int s, int t, int mask, const float *rot, const site_t *old_s,
                               const site_t *old_t, cv *grot, site_t *tmp) {
  site_t *gs = &g[s], *gt = &g[t];
  tmp->dl = old_s->dl, tmp->dr = old_s->dr;
  for (int l = 0; l < old_s->dl; l++)
    for (int r = 0; r < old_s->dr; r++)
      for (int p = 0; p < P; p++) {
        int k = (p & mask) != 0, nl = s < t ? l : l * 2 + k, nr = s < t ? r * 2 + k : r;
        tmp->t[(l * old_s->dr + r) * P + p] = gs->t[(nl * gs->dr + nr) * P + p];
      }
  copy_site(gs, tmp);
  tmp->dl = old_t->dl, tmp->dr = old_t->dr;
  for (int l = 0; l < old_t->dl; l++)
    for (int r = 0; r < old_t->dr; r++) {
      int i0 = s < t ? ((l * 2) * gt->dr + r) : (l * gt->dr + r * 2), i1 = s < t ? i0 + gt->dr : i0 + 1;
      cv g1[P];
      memcpy(g1, &gt->t[i1 * P], sizeof(g1));
      local_adjoint(g1, &old_t->t[(l * old_t->dr + r) * P], rot, grot);
      for (int p = 0; p < P; p++) {
        tmp->t[(l * old_t->dr + r) * P + p].re = gt->t[i0 * P + p].re + g1[p].re;
        tmp->t[(l * old_t->dr + r) * P + p].im = gt->t[i0 * P + p].im + g1[p].im;
      }
    }
  copy_site(gt, tmp);
}

static void block_backward(const float *init_re, const float *init_im, int n_valid, const int *ops, int n_ops,
                           const float *mats, const int *open_mask, const float *obs, const float *gz,
                           float *g_init_re, float *g_init_im, cv *g_mats, cv *g_obs, site_t *sites, site_t *tmp,
                           site_t *tape, site_t *g) {
  static __thread cv psi[P * P * P], T[P * MAXD * P], Y[P * P * MAXD];
  load_init(init_re, init_im, n_valid, sites);
  evolve(sites, tmp, ops, n_ops, mats, tape);
  vf gq[12];
  for (int q = 0; q < 12; q++)
    for (int w = 0; w < W; w++) gq[q][w] = w < n_valid ? gz[w * 12 + q] : 0.f;
  int jo[3];
  for (int c = 0; c < 3; c++) jo[c] = open_mask[c] == 8 ? 0 : open_mask[c] == 4 ? 1 : open_mask[c] == 2 ? 2 : 3;
  vf d[3][P]; /* the weighted Z's of the qubits read from the state, per site */
  for (int c = 0; c < 3; c++)
    for (int p = 0; p < P; p++) {
      vf acc = {0};
      for (int j = 0; j < 4; j++)
        if (j != jo[c]) acc += (p & (8 >> j)) ? -gq[c * 4 + j] : gq[c * 4 + j];
      d[c][p] = acc;
    }
  cv og[8][8]; /* sum_k g_k obs[k] */
  for (int j = 0; j < 8; j++)
    for (int i = 0; i < 8; i++) {
      cv acc = {{0}, {0}};
      for (int k = 0; k < 3; k++) {
        const float *o = &obs[((k * 8 + j) * 8 + i) * 2];
        acc.re += gq[k * 4 + jo[k]] * o[0];
        acc.im += gq[k * 4 + jo[k]] * o[1];
      }
      og[j][i] = acc;
    }
  site_t *s0 = &sites[0], *s1 = &sites[1], *s2 = &sites[2];
  int da = s0->dr, db = s1->dr;
  for (int p0 = 0; p0 < P; p0++) /* T[p0][b][p1] = sum_a s0[a][p0] s1[a][b][p1] */
    for (int b = 0; b < db; b++)
      for (int p1 = 0; p1 < P; p1++) {
        cv acc = {{0}, {0}};
        for (int a = 0; a < da; a++) cmac(&acc, s0->t[a * P + p0], s1->t[(a * db + b) * P + p1]);
        T[(p0 * db + b) * P + p1] = acc;
      }
  for (int p0 = 0; p0 < P; p0++) /* psi[p0][p1][p2] = sum_b T[p0][b][p1] s2[b][p2] */
    for (int p1 = 0; p1 < P; p1++)
      for (int p2 = 0; p2 < P; p2++) {
        cv acc = {{0}, {0}};
        for (int b = 0; b < db; b++) cmac(&acc, T[(p0 * db + b) * P + p1], s2->t[b * P + p2]);
        psi[(p0 * P + p1) * P + p2] = acc;
      }
  /* psi <- H psi, closed index by closed index; rho of the open qubits on the way (for the observables' gradient) */
  int closed[3][8];
  for (int c = 0; c < 3; c++)
    for (int p = 0, n = 0; p < P; p++)
      if (!(p & open_mask[c])) closed[c][n++] = p;
  cv rho[8][8];
  memset(rho, 0, sizeof(rho));
  for (int c0 = 0; c0 < 8; c0++)
    for (int c1 = 0; c1 < 8; c1++)
      for (int c2 = 0; c2 < 8; c2++) {
        int idx[8];
        cv v[8];
        for (int x = 0; x < 8; x++) {
          int p0 = closed[0][c0] | (x & 4 ? open_mask[0] : 0), p1 = closed[1][c1] | (x & 2 ? open_mask[1] : 0),
              p2 = closed[2][c2] | (x & 1 ? open_mask[2] : 0);
          idx[x] = (p0 * P + p1) * P + p2;
          v[x] = psi[idx[x]];
        }
        for (int x = 0; x < 8; x++)
          for (int y = 0; y < 8; y++) cmac_conj(&rho[x][y], v[x], v[y]);
        for (int j = 0; j < 8; j++) {
          int pj = idx[j], p0 = pj >> 8, p1 = (pj >> 4) & 15, p2 = pj & 15;
          vf dd = d[0][p0] + d[1][p1] + d[2][p2];
          cv acc = {dd * v[j].re, dd * v[j].im};
          for (int i = 0; i < 8; i++) cmac(&acc, og[j][i], v[i]);
          psi[pj] = acc;
        }
      }
  for (int k = 0; k < 3; k++) /* g_obs[k][j][i] += g_k rho[j][i] */
    for (int j = 0; j < 8; j++)
      for (int i = 0; i < 8; i++) {
        g_obs[(k * 8 + j) * 8 + i].re += gq[k * 4 + jo[k]] * rho[j][i].re;
        g_obs[(k * 8 + j) * 8 + i].im += gq[k * 4 + jo[k]] * rho[j][i].im;
      }
  /* Y[p0][p1][b] = sum_p2 phi conj(s2[b][p2]); site gradients (times 2: torch's convention) */
  for (int p0 = 0; p0 < P; p0++)
    for (int p1 = 0; p1 < P; p1++)
      for (int b = 0; b < db; b++) {
        cv acc = {{0}, {0}};
        for (int p2 = 0; p2 < P; p2++) cmac_conj(&acc, psi[(p0 * P + p1) * P + p2], s2->t[b * P + p2]);
        Y[(p0 * P + p1) * db + b] = acc;
      }
  for (int c = 0; c < 3; c++) g[c].dl = sites[c].dl, g[c].dr = sites[c].dr;
  for (int a = 0; a < da; a++)
    for (int p0 = 0; p0 < P; p0++) {
      cv acc = {{0}, {0}};
      for (int p1 = 0; p1 < P; p1++)
        for (int b = 0; b < db; b++) cmac_conj(&acc, Y[(p0 * P + p1) * db + b], s1->t[(a * db + b) * P + p1]);
      g[0].t[a * P + p0].re = 2 * acc.re, g[0].t[a * P + p0].im = 2 * acc.im;
    }
  for (int a = 0; a < da; a++)
    for (int b = 0; b < db; b++)
      for (int p1 = 0; p1 < P; p1++) {
        cv acc = {{0}, {0}};
        for (int p0 = 0; p0 < P; p0++) cmac_conj(&acc, Y[(p0 * P + p1) * db + b], s0->t[a * P + p0]);
        g[1].t[(a * db + b) * P + p1].re = 2 * acc.re, g[1].t[(a * db + b) * P + p1].im = 2 * acc.im;
      }
  for (int b = 0; b < db; b++)
    for (int p2 = 0; p2 < P; p2++) {
      cv acc = {{0}, {0}};
      for (int p0 = 0; p0 < P; p0++)
        for (int p1 = 0; p1 < P; p1++) cmac_conj(&acc, psi[(p0 * P + p1) * P + p2], T[(p0 * db + b) * P + p1]);
      g[2].t[b * P + p2].re = 2 * acc.re, g[2].t[b * P + p2].im = 2 * acc.im;
    }
  for (int o = n_ops - 1; o >= 0; o--) { /* undo the ops */
    const int *op = &ops[o * 5];
    const float *m = &mats[(long)op[4] * P * P * 2];
    cv *gm = &g_mats[(long)op[4] * P * P];
    if (op[0] == 0) {
      site_t *gs = &g[op[1]];
      for (int lr = 0; lr < gs->dl * gs->dr; lr++) local_adjoint(&gs->t[lr * P], &tape[2 * o].t[lr * P], m, gm);
    } else {
      controlled_adjoint(g, op[1], op[2], op[3], m, &tape[2 * o], &tape[2 * o + 1], gm, tmp);
    }
  }
  for (int w = 0; w < n_valid; w++)
    for (int c = 0; c < 3; c++)
      for (int p = 0; p < P; p++) {
        g_init_re[(w * 3 + c) * P + p] = g[c].t[p].re[w];
        g_init_im[(w * 3 + c) * P + p] = g[c].t[p].im[w];
      }
}

static float lane_sum(vf x) {
  float s = 0.f;
  for (int w = 0; w < W; w++) s += x[w];
  return s;
}

int chain_backward(const float *init_re, const float *init_im, long n, const int *ops, int n_ops,
                   const float *mats, const int *open_mask, const float *obs, const float *gz, float *g_init_re,
                   float *g_init_im, float *g_mats, float *g_obs, int threads) {
  long blocks = (n + W - 1) / W, nm = 2L * n_ops * P * P, no = 2L * 3 * 64;
  int nt = threads > 0 ? threads : 1;
  float *part = calloc((size_t)nt * (nm + no), sizeof(float)); /* each thread's sums, added in thread order */
#pragma omp parallel num_threads(nt)
  {
    static __thread site_t sites[3], tmp, g[3];
    /* vectors need their own alignment (up to 64 bytes): aligned_alloc; sizes are multiples of sizeof(cv) */
    site_t *tape = aligned_alloc(64, sizeof(site_t) * 2 * n_ops);
    cv *gm = aligned_alloc(64, sizeof(cv) * n_ops * P * P), *go = aligned_alloc(64, sizeof(cv) * 3 * 64);
    memset(gm, 0, sizeof(cv) * n_ops * P * P), memset(go, 0, sizeof(cv) * 3 * 64);
#pragma omp for schedule(static)
    for (long k = 0; k < blocks; k++) {
      long i = k * W;
      int valid = n - i < W ? (int)(n - i) : W;
      block_backward(init_re + i * 3 * P, init_im + i * 3 * P, valid, ops, n_ops, mats, open_mask, obs, gz + i * 12,
                     g_init_re + i * 3 * P, g_init_im + i * 3 * P, gm, go, sites, &tmp, tape, g);
    }
    float *mine = part + (size_t)omp_get_thread_num() * (nm + no);
    for (long e = 0; e < nm / 2; e++) mine[2 * e] = lane_sum(gm[e].re), mine[2 * e + 1] = lane_sum(gm[e].im);
    for (long e = 0; e < no / 2; e++) mine[nm + 2 * e] = lane_sum(go[e].re), mine[nm + 2 * e + 1] = lane_sum(go[e].im);
    free(tape), free(gm), free(go);
  }
  /* a fixed order of addition: the same gradients on every call with the same thread count */
  memset(g_mats, 0, sizeof(float) * nm), memset(g_obs, 0, sizeof(float) * no);
  for (int t = 0; t < nt; t++) {
    const float *p = part + (size_t)t * (nm + no);
    for (long e = 0; e < nm; e++) g_mats[e] += p[e];
    for (long e = 0; e < no; e++) g_obs[e] += p[nm + e];
  }
  free(part);
  return 0;
}
