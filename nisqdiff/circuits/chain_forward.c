/* The forward pass: <Z_q> of every input (see chain_kernel.h and chain_readout.h), and the Born probabilities. */
#include "chain_readout.h"

/* one vector of W inputs. ops: n_ops x (kind, s, t, mask, matrix index, pattern offset); kind 0 = local on site s,
 * 1 = controlled (control site s, target t, control bit mask); pats: the ops' sparsity patterns (chain_kernel.h). */
static void block(const float *x, int n_valid, const int *ops, int n_ops, const int *pats,
                  const float *mats, const int *open_mask, const float *obs, float *out, site_t *sites,
                  site_t *tmp) {
  static __thread readout_t env;
  vf z[12], cs[12], sn[12];
  load_angles(x, n_valid, sites, cs, sn);
  evolve(sites, tmp, ops, n_ops, mats, pats, 0);
  readout(sites, open_mask, obs, z, &env);
  for (int w = 0; w < n_valid; w++)
    for (int q = 0; q < 12; q++) out[w * 12 + q] = z[q][w];
}

/* n_circuits circuits of one op table, n inputs each: x (n_circuits, n, 12) angles, mats (n_circuits, n_ops, P, P,
 * 2), obs (n_circuits, 3, 8, 8, 2), out (n_circuits, n, 12). A vector never mixes circuits: blocks of W inputs
 * per circuit. */
int chain_expval(const float *x, long n, int n_circuits, const int *ops, int n_ops, const int *pats,
                 const float *mats, const int *open_mask, const float *obs, float *out, int threads) {
  static __thread site_t sites[3], tmp;
  long per = (n + W - 1) / W, blocks = per * n_circuits;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long k = 0; k < blocks; k++) {
    long c = k / per, i = (k % per) * W, at = c * n + i;
    int valid = n - i < W ? (int)(n - i) : W;
    block(x + at * 12, valid, ops, n_ops, pats, mats + c * n_ops * P * P * 2, open_mask,
          obs + c * 3 * 64 * 2, out + at * 12, sites, &tmp);
  }
  return 0;
}

/* Born probabilities of every basis state (the shots device): the deferred ops, the full state psi[p0][p1][p2]
 * (4,096 amplitudes), then the deferred block f (8, 8, 2) on the open qubits, f[x][y] with x = (x0 x1 x2) in
 * site order; out (n, 4096) float, index p0 * 256 + p1 * 16 + p2 (each site's qubits in group order). */
static void block_probs(const float *x, int n_valid, const int *ops, int n_ops, const int *pats,
                        const float *mats, const int *open_mask, const float *f, float *out, site_t *sites,
                        site_t *tmp) {
  static __thread cv T[P * MAXD * P], psi[P * P * P];
  vf cs[12], sn[12];
  load_angles(x, n_valid, sites, cs, sn);
  evolve(sites, tmp, ops, n_ops, mats, pats, 0);
  const site_t *s0 = &sites[0], *s1 = &sites[1], *s2 = &sites[2];
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
  int closed[3][8];
  for (int c = 0; c < 3; c++)
    for (int p = 0, k = 0; p < P; p++)
      if (!(p & open_mask[c])) closed[c][k++] = p;
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
        for (int x = 0; x < 8; x++) {
          cv acc = {{0}, {0}};
          for (int y = 0; y < 8; y++) {
            cv m = cmul(f[(x * 8 + y) * 2], f[(x * 8 + y) * 2 + 1], v[y]);
            acc.re += m.re, acc.im += m.im;
          }
          vf pr = acc.re * acc.re + acc.im * acc.im;
          for (int w = 0; w < n_valid; w++) out[(long)w * P * P * P + idx[x]] = pr[w];
        }
      }
}

/* as chain_expval: x (n_circuits, n, 12), f (n_circuits, 8, 8, 2), out (n_circuits, n, 4096) */
int chain_probs(const float *x, long n, int n_circuits, const int *ops, int n_ops, const int *pats,
                const float *mats, const int *open_mask, const float *f, float *out, int threads) {
  static __thread site_t sites[3], tmp;
  long per = (n + W - 1) / W, blocks = per * n_circuits;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (long k = 0; k < blocks; k++) {
    long c = k / per, i = (k % per) * W, at = c * n + i;
    int valid = n - i < W ? (int)(n - i) : W;
    block_probs(x + at * 12, valid, ops, n_ops, pats, mats + c * n_ops * P * P * 2, open_mask,
                f + c * 64 * 2, out + at * P * P * P, sites, &tmp);
  }
  return 0;
}
