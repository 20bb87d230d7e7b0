/* The forward pass: <Z_q> of every input (see chain_kernel.h and chain_readout.h). */
#include "chain_readout.h"

/* one vector of W inputs. ops: n_ops x (kind, s, t, mask, matrix index); kind 0 = local on site s,
 * 1 = controlled (control site s, target t, control bit mask). */
static void block(const float *init_re, const float *init_im, int n_valid, const int *ops, int n_ops,
                  const float *mats, const int *open_mask, const float *obs, float *out, site_t *sites,
                  site_t *tmp) {
  static __thread readout_t env;
  vf z[12];
  load_init(init_re, init_im, n_valid, sites);
  evolve(sites, tmp, ops, n_ops, mats, 0);
  readout(sites, open_mask, obs, z, &env);
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
