#include <omp.h>

#include "chain_readout.h"

/* The backward pass: gradients of sum_q gz_q <Z_q> (torch's convention for complex tensors:
 * grad = dL/d(re) + i dL/d(im) = 2 dL/d(conj)) with respect to the initial site states (then, through the
 * encoding, the input angles), every op matrix and the deferred block's observables. E = <psi| H |psi>,
 * H = D + O: D diagonal, the weighted Z's of the qubits read from the state (d_c on each site), O the
 * weighted observables on the open qubits. dE/d(conj site) comes from the forward's grams (chain_readout.h),
 * never from the full state: for D, the end sites' grams weighted by d; for O, the open grams with O
 * contracted in. The ops are then undone in reverse order from a tape of the sites each op changed. */

/* y_v = M x_v for n vectors v: g_v <- M^H g_v, gm += sum_v g_v x_v^H (summed in registers, added once), both
 * over M's pattern pt only (chain_kernel.h): gm stays zero where M is zero for every weight */
static void local_adjoint(cv *g, const cv *x, int n, const float *m, const int *pt, cv *gm) {
  const int *col = pt + P + 1;
  cv tmp[P];
  for (int i = 0; i < P; i++)
    for (int k = pt[i]; k < pt[i + 1]; k++) {
      const int j = col[k];
      cv acc = {{0}, {0}};
      for (int v = 0; v < n; v++) cmac_conj(&acc, g[v * P + i], x[v * P + j]);
      gm[i * P + j].re += acc.re, gm[i * P + j].im += acc.im;
    }
  for (int v = 0; v < n; v++) {
    memset(tmp, 0, sizeof(tmp));
    for (int i = 0; i < P; i++) {
      const cv gi = g[v * P + i];
      for (int k = pt[i]; k < pt[i + 1]; k++) {
        const int j = col[k];
        cv y = cmul(m[(i * P + j) * 2], -m[(i * P + j) * 2 + 1], gi);
        tmp[j].re += y.re; tmp[j].im += y.im;
      }
    }
    memcpy(&g[v * P], tmp, sizeof(cv) * P);
  }
}

static void controlled_adjoint(site_t *g, int s, int t, int mask, const float *rot, const int *pt, const site_t *old_s,
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
  /* target site: the bit-1 half of its gradient goes back through the rotation, then both halves add */
  static __thread cv g1[MAXD * MAXD * P];
  int n = old_t->dl * old_t->dr;
  for (int l = 0; l < old_t->dl; l++)
    for (int r = 0; r < old_t->dr; r++) {
      int i1 = s < t ? ((l * 2 + 1) * gt->dr + r) : (l * gt->dr + r * 2 + 1);
      memcpy(&g1[(l * old_t->dr + r) * P], &gt->t[i1 * P], sizeof(cv) * P);
    }
  local_adjoint(g1, old_t->t, n, rot, pt, grot);
  tmp->dl = old_t->dl, tmp->dr = old_t->dr;
  for (int l = 0; l < old_t->dl; l++)
    for (int r = 0; r < old_t->dr; r++) {
      int i0 = s < t ? ((l * 2) * gt->dr + r) : (l * gt->dr + r * 2), v = l * old_t->dr + r;
      for (int p = 0; p < P; p++) {
        tmp->t[v * P + p].re = gt->t[i0 * P + p].re + g1[v * P + p].re;
        tmp->t[v * P + p].im = gt->t[i0 * P + p].im + g1[v * P + p].im;
      }
    }
  copy_site(gt, tmp);
}

/* g[a][a'] = sum_p d[p] t[a][p] conj(t[a'][p]): a site's gram with d on its physical index */
static void dgram(const cv *t, int n, const vf *d, cv *g) {
  for (int a = 0; a < n; a++)
    for (int c = 0; c < n; c++) {
      cv acc = {{0}, {0}};
      for (int p = 0; p < P; p++) {
        cv x = t[a * P + p], y = t[c * P + p];
        acc.re += d[p] * (x.re * y.re + x.im * y.im);
        acc.im += d[p] * (x.im * y.re - x.re * y.im);
      }
      g[a * n + c] = acc;
    }
}

/* out[e][(q, x)] += 2 sum_{a, y} t[a][(q, y)] G[(a, y)][(e, x)] over the n bond entries of a site, (q, x) its
 * closed index and open bit: the site's gradient from the gradient G of its open gram */
static void open_gram_adjoint(const cv *t, int n, const cv *G, const int *closed, int mask, cv *out) {
  for (int a = 0; a < n; a++)
    for (int y = 0; y < 2; y++) {
      const cv *row = &G[(a * 2 + y) * (2 * n)]; /* G[(a, y)][.], read in order */
      cv ty[8];
      for (int q = 0; q < 8; q++) {
        cv v = t[a * P + (closed[q] | (y ? mask : 0))];
        ty[q].re = 2 * v.re, ty[q].im = 2 * v.im;
      }
      for (int e = 0; e < n; e++)
        for (int x = 0; x < 2; x++)
          for (int q = 0; q < 8; q++) cmac(&out[e * P + (closed[q] | (x ? mask : 0))], ty[q], row[e * 2 + x]);
    }
}

/* out[a][p] += 2 sum_a' t[a'][p] (d[p] M[a'][a] + Md[a'][a]): an end site's gradient from its environment M and
 * the d-weighted one Md, n its bond */
static void end_site_adjoint(const cv *t, int n, const vf *d, const cv *M, const cv *Md, cv *out) {
  for (int a = 0; a < n; a++)
    for (int p = 0; p < P; p++) {
      cv acc = {{0}, {0}};
      for (int ap = 0; ap < n; ap++) {
        cv m = M[ap * n + a], md = Md[ap * n + a];
        cv k = {d[p] * m.re + md.re, d[p] * m.im + md.im};
        cmac(&acc, t[ap * P + p], k);
      }
      out[a * P + p].re += 2 * acc.re, out[a * P + p].im += 2 * acc.im;
    }
}

/* the gradient of E into g (sites' shapes), from the readout's grams: d[c][p] the weighted Z's, og[x][y] the
 * weighted observables (bra x, ket y) */
static void readout_backward(const site_t *sites, const readout_t *env, vf d[3][P], cv og[8][8], site_t *g) {
  const site_t *s0 = &sites[0], *s1 = &sites[1], *s2 = &sites[2];
  int da = env->da, db = env->db, n0 = env->n0, n1 = env->n1, n2 = env->n2;
  static __thread cv tL[MAXD * MAXD * P], tLd[MAXD * MAXD * P], G1[(2 * MAXD * MAXD) * (2 * MAXD * MAXD)];
  const cv zero = {{0}, {0}};
  for (int c = 0; c < 3; c++) {
    g[c].dl = sites[c].dl, g[c].dr = sites[c].dr;
    for (int i = 0; i < g[c].dl * g[c].dr * P; i++) g[c].t[i] = zero;
  }
  /* D. Ld, Rd: the end sites' grams weighted by d; tL[a][b'][p] = sum_a' L[a'][a] s1[a'][b'][p] (tLd with Ld) */
  cv Ld[MAXD * MAXD], Rd[MAXD * MAXD], Md[MAXD * MAXD], Nd[MAXD * MAXD];
  dgram(s0->t, da, d[0], Ld);
  dgram(s2->t, db, d[2], Rd);
  for (int a = 0; a < da; a++)
    for (int b = 0; b < db; b++)
      for (int p = 0; p < P; p++) {
        cv acc = zero, accd = zero;
        for (int e = 0; e < da; e++) {
          cmac(&acc, env->L[e * da + a], s1->t[(e * db + b) * P + p]);
          cmac(&accd, Ld[e * da + a], s1->t[(e * db + b) * P + p]);
        }
        tL[(a * db + b) * P + p] = acc, tLd[(a * db + b) * P + p] = accd;
      }
  /* g1[a][b][p] = 2 sum_b' ((d1 tL + tLd)[a][b'][p] R[b'][b] + tL[a][b'][p] Rd[b'][b]);
   * Nd[b'][b] = sum_{a,p} (d1 tL + tLd)[a][b'][p] conj(s1[a][b][p]) */
  memset(Nd, 0, sizeof(Nd));
  for (int a = 0; a < da; a++)
    for (int bp = 0; bp < db; bp++)
      for (int p = 0; p < P; p++) {
        cv t = tL[(a * db + bp) * P + p], td = tLd[(a * db + bp) * P + p];
        cv h = {d[1][p] * t.re + td.re, d[1][p] * t.im + td.im};
        for (int b = 0; b < db; b++) {
          cv *o = &g[1].t[(a * db + b) * P + p];
          cv acc = zero;
          cmac(&acc, h, env->R[bp * db + b]);
          cmac(&acc, t, Rd[bp * db + b]);
          o->re += 2 * acc.re, o->im += 2 * acc.im;
          cmac_conj(&Nd[bp * db + b], h, s1->t[(a * db + b) * P + p]);
        }
      }
  /* Md[a'][a] = sum_{b,p} (sum_b' s1[a'][b'][p] (d1 R + Rd)[b'][b]) conj(s1[a][b][p]) */
  memset(Md, 0, sizeof(Md));
  for (int ap = 0; ap < da; ap++)
    for (int b = 0; b < db; b++)
      for (int p = 0; p < P; p++) {
        cv w = zero;
        for (int bp = 0; bp < db; bp++) {
          cv r = env->R[bp * db + b], rd = Rd[bp * db + b];
          cv k = {d[1][p] * r.re + rd.re, d[1][p] * r.im + rd.im};
          cmac(&w, s1->t[(ap * db + bp) * P + p], k);
        }
        for (int a = 0; a < da; a++) cmac_conj(&Md[ap * da + a], w, s1->t[(a * db + b) * P + p]);
      }
  end_site_adjoint(s0->t, da, d[0], env->M, Md, g[0].t); /* g0[a][p] = 2 sum_a' s0[a'][p] (d0 M + Md)[a'][a] */
  end_site_adjoint(s2->t, db, d[2], env->N, Nd, g[2].t); /* g2[b][p] = 2 sum_b' s2[b'][p] (d2 N + Nd)[b'][b] */
  /* O. S[y0 x0 y1 x1][a2][b] = sum_{x2,y2} og[x0x1x2][y0y1y2] K2[(a2,y2)][(b,x2)]; the open grams' gradients
   * G0 = K1 S, G1 = K0 S, G2 = og Q; then each site's from its own. og and the grams are Hermitian, so
   * S[x0 y0 x1 y1][b][a2] = conj(S[y0 x0 y1 x1][a2][b]) and G0, G1 are Hermitian: half of each is computed */
  cv S[16 * MAXD * MAXD], G0[4 * MAXD * MAXD], G2[4 * MAXD * MAXD];
  for (int i = 0; i < 16; i++) { /* i = ((y0 * 2 + x0) * 2 + y1) * 2 + x1 */
    int y0 = i >> 3, x0 = (i >> 2) & 1, y1 = (i >> 1) & 1, x1 = i & 1;
    for (int a2 = 0; a2 < db; a2++)
      for (int b = 0; b < db; b++) {
        cv acc = zero;
        for (int x2 = 0; x2 < 2; x2++)
          for (int y2 = 0; y2 < 2; y2++)
            cmac(&acc, og[x0 * 4 + x1 * 2 + x2][y0 * 4 + y1 * 2 + y2], env->K2[(a2 * 2 + y2) * n2 + b * 2 + x2]);
        S[(i * db + a2) * db + b] = acc;
      }
  }
  for (int a = 0; a < da; a++)
    for (int a2 = 0; a2 < db; a2++)
      for (int y1 = 0; y1 < 2; y1++)
        for (int e = 0; e < da; e++)
          for (int b = 0; b < db; b++)
            for (int x1 = 0; x1 < 2; x1++) {
              const int i = (a * db + a2) * 2 + y1, j = (e * db + b) * 2 + x1;
              if (j < i) continue;
              cv acc = zero;
              for (int y0 = 0; y0 < 2; y0++)
                for (int x0 = 0; x0 < 2; x0++)
                  cmac(&acc, env->K0[(a * 2 + y0) * n0 + e * 2 + x0], S[((((y0 * 2 + x0) * 2 + y1) * 2 + x1) * db + a2) * db + b]);
              G1[j * n1 + i].re = acc.re, G1[j * n1 + i].im = -acc.im;
              G1[i * n1 + j] = acc;
            }
  for (int a = 0; a < da; a++)
    for (int y0 = 0; y0 < 2; y0++)
      for (int e = 0; e < da; e++)
        for (int x0 = 0; x0 < 2; x0++) {
          const int i = a * 2 + y0, j = e * 2 + x0;
          if (j < i) continue;
          cv acc = zero;
          for (int y1 = 0; y1 < 2; y1++)
            for (int x1 = 0; x1 < 2; x1++)
              for (int a2 = 0; a2 < db; a2++)
                for (int b = 0; b < db; b++)
                  cmac(&acc, env->K1[((a * db + a2) * 2 + y1) * n1 + (e * db + b) * 2 + x1],
                       S[((((y0 * 2 + x0) * 2 + y1) * 2 + x1) * db + a2) * db + b]);
          G0[j * n0 + i].re = acc.re, G0[j * n0 + i].im = -acc.im;
          G0[i * n0 + j] = acc;
        }
  for (int a2 = 0; a2 < db; a2++)
    for (int y2 = 0; y2 < 2; y2++)
      for (int b = 0; b < db; b++)
        for (int x2 = 0; x2 < 2; x2++) {
          cv acc = zero;
          for (int i = 0; i < 16; i++) { /* Q's i = ((y0 * 2 + x0) * 2 + y1) * 2 + x1, ket bits first */
            int y0 = i >> 3, x0 = (i >> 2) & 1, y1 = (i >> 1) & 1, x1 = i & 1;
            cmac(&acc, og[x0 * 4 + x1 * 2 + x2][y0 * 4 + y1 * 2 + y2], env->Q[(i * db + a2) * db + b]);
          }
          G2[(a2 * 2 + y2) * n2 + b * 2 + x2] = acc;
        }
  open_gram_adjoint(s0->t, da, G0, env->closed[0], 8 >> env->jo[0], g[0].t);
  open_gram_adjoint(s1->t, da * db, G1, env->closed[1], 8 >> env->jo[1], g[1].t);
  open_gram_adjoint(s2->t, db, G2, env->closed[2], 8 >> env->jo[2], g[2].t);
}

/* the angles' gradient from the initial sites' (torch's convention gs = dL/dRe + i dL/dIm): amplitude p is
 * (-i)^k m[p], k = popcount(p), m the real product of cos or sin of the half angles (load_angles), so
 * dL/dx_j = sum_p Re(conj(gs[p]) (-i)^k) dm[p]/dx_j with d cos(x/2)/dx = -sin/2 and d sin(x/2)/dx = cos/2 */
static void angles_backward(const site_t *g, const vf cs[12], const vf sn[12], int n_valid, float *gx) {
  for (int c = 0; c < 3; c++) {
    vf dx[4] = {{0}};
    for (int p = 0; p < P; p++) {
      const cv t = g[c].t[p];
      vf gp; /* Re(conj(t) (-i)^k) */
      switch (__builtin_popcount(p) & 3) {
        case 0: gp = t.re; break;
        case 1: gp = -t.im; break;
        case 2: gp = -t.re; break;
        default: gp = t.im;
      }
      for (int j = 0; j < 4; j++) {
        const int q = 4 * c + j;
        vf d = (p & (8 >> j)) ? 0.5f * cs[q] : -0.5f * sn[q];
        for (int k = 0; k < 4; k++)
          if (k != j) d *= (p & (8 >> k)) ? sn[4 * c + k] : cs[4 * c + k];
        dx[j] += gp * d;
      }
    }
    for (int w = 0; w < n_valid; w++)
      for (int j = 0; j < 4; j++) gx[w * 12 + 4 * c + j] = dx[j][w];
  }
}

static void block_backward(const float *x, int n_valid, const int *ops, int n_ops, const int *pats, const float *mats,
                           const int *open_mask, const float *obs, const float *gz, float *gx, cv *g_mats,
                           cv *g_obs, site_t *sites, site_t *tmp, site_t *tape, site_t *g) {
  static __thread readout_t env;
  vf z[12], gq[12], cs[12], sn[12];
  load_angles(x, n_valid, sites, cs, sn);
  evolve(sites, tmp, ops, n_ops, mats, pats, tape);
  readout(sites, open_mask, obs, z, &env);
  for (int q = 0; q < 12; q++)
    for (int w = 0; w < W; w++) gq[q][w] = w < n_valid ? gz[w * 12 + q] : 0.f;
  const int *jo = env.jo;
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
  for (int k = 0; k < 3; k++) /* g_obs[k][j][i] += g_k rho[j][i] */
    for (int j = 0; j < 8; j++)
      for (int i = 0; i < 8; i++) {
        g_obs[(k * 8 + j) * 8 + i].re += gq[k * 4 + jo[k]] * env.rho[j][i].re;
        g_obs[(k * 8 + j) * 8 + i].im += gq[k * 4 + jo[k]] * env.rho[j][i].im;
      }
  readout_backward(sites, &env, d, og, g);
  for (int o = n_ops - 1; o >= 0; o--) { /* undo the ops */
    const int *op = &ops[o * OPW], *pt = &pats[op[5]];
    const float *m = &mats[(long)op[4] * P * P * 2];
    cv *gm = &g_mats[(long)op[4] * P * P];
    if (op[0] == 0) {
      site_t *gs = &g[op[1]];
      local_adjoint(gs->t, tape[2 * o].t, gs->dl * gs->dr, m, pt, gm);
    } else {
      controlled_adjoint(g, op[1], op[2], op[3], m, pt, &tape[2 * o], &tape[2 * o + 1], gm, tmp);
    }
  }
  angles_backward(g, cs, sn, n_valid, gx);
}

static float lane_sum(vf x) {
  float s = 0.f;
  for (int w = 0; w < W; w++) s += x[w];
  return s;
}

/* flush a thread's lane accumulators (gm: n_ops x P x P, go: 3 x 64) into its row of sums, and clear them */
static void flush(cv *gm, cv *go, long nm, long no, float *row) {
  for (long e = 0; e < nm / 2; e++) row[2 * e] += lane_sum(gm[e].re), row[2 * e + 1] += lane_sum(gm[e].im);
  for (long e = 0; e < no / 2; e++) row[nm + 2 * e] += lane_sum(go[e].re), row[nm + 2 * e + 1] += lane_sum(go[e].im);
  memset(gm, 0, sizeof(cv) * nm / 2), memset(go, 0, sizeof(cv) * no / 2);
}

/* shapes as chain_expval (n_circuits circuits of n inputs); gx (n_circuits, n, 12) as x; g_mats (n_circuits,
 * n_ops, P, P, 2), g_obs (n_circuits, 3, 8, 8, 2). Each thread takes a contiguous run of blocks (static schedule), so it meets the
 * circuits in order: its sums of one circuit are flushed when the next begins, then added in thread order. */
int chain_backward(const float *x, long n, int n_circuits, const int *ops, int n_ops, const int *pats, const float *mats,
                   const int *open_mask, const float *obs, const float *gz, float *gx, float *g_mats, float *g_obs,
                   int threads) {
  long per = (n + W - 1) / W, blocks = per * n_circuits, nm = 2L * n_ops * P * P, no = 2L * 3 * 64;
  long stride = nm + no; /* one circuit's sums */
  int nt = threads > 0 ? threads : 1;
  float *part = calloc((size_t)nt * n_circuits * stride, sizeof(float)); /* each thread's sums per circuit */
#pragma omp parallel num_threads(nt)
  {
    static __thread site_t sites[3], tmp, g[3];
    /* vectors need their own alignment (up to 64 bytes): aligned_alloc; sizes are multiples of sizeof(cv) */
    site_t *tape = aligned_alloc(64, sizeof(site_t) * 2 * n_ops);
    cv *gm = aligned_alloc(64, sizeof(cv) * n_ops * P * P), *go = aligned_alloc(64, sizeof(cv) * 3 * 64);
    memset(gm, 0, sizeof(cv) * n_ops * P * P), memset(go, 0, sizeof(cv) * 3 * 64);
    float *mine = part + (size_t)omp_get_thread_num() * n_circuits * stride;
    long current = -1;
#pragma omp for schedule(static)
    for (long k = 0; k < blocks; k++) {
      long c = k / per, i = (k % per) * W, at = c * n + i;
      int valid = n - i < W ? (int)(n - i) : W;
      if (c != current) {
        if (current >= 0) flush(gm, go, nm, no, mine + current * stride);
        current = c;
      }
      block_backward(x + at * 12, valid, ops, n_ops, pats, mats + c * nm, open_mask, obs + c * no, gz + at * 12,
                     gx + at * 12, gm, go, sites, &tmp, tape, g);
    }
    if (current >= 0) flush(gm, go, nm, no, mine + current * stride);
    free(tape), free(gm), free(go);
  }
  /* a fixed order of addition: the same gradients on every call with the same thread count */
  memset(g_mats, 0, sizeof(float) * nm * n_circuits), memset(g_obs, 0, sizeof(float) * no * n_circuits);
  for (int t = 0; t < nt; t++)
    for (long c = 0; c < n_circuits; c++) {
      const float *p = part + ((size_t)t * n_circuits + c) * stride;
      for (long e = 0; e < nm; e++) g_mats[c * nm + e] += p[e];
      for (long e = 0; e < no; e++) g_obs[c * no + e] += p[nm + e];
    }
  free(part);
  return 0;
}
