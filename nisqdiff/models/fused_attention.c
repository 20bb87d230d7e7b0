/* The U-Net's linear attention (layers.LinearAttention) in one pass per image, and its gradients, fp32 on
   channels-last images (n, p, c) (nisqdiff/models/fused.py): pre-LN, q and k projections, softmax of k over
   positions (by blocks of positions with a running maximum) and of q over each head's features, the value
   and output projections folded into one (heads, c, c) matrix per call, the output LN and the residual; no
   (positions x 128) tensor leaves the cache. The backward recomputes q and k from the forward's per-image
   key statistics and sums the weights' gradients over threads in thread order (the same result on every
   call with the same thread count). */
#include "fused.h"

/* The keys of one image: k = softmax over positions of W_k xn, by blocks of BLK positions with a running
   maximum mx; acc[c][d] = sum_p exp(k[d][p] - mx[d]) xn[p][c] and s[d] = sum_p exp(k[d][p] - mx[d]).
   Vectorised over the 128 features d. */
static void keys(const float *xn, int p, int c, const float *wk_t, float *acc, float *s, float *mx_out) {
    vf mx[NV], sv[NV], z[BLK][NV];
    for (int v = 0; v < HID / VW; v++) { mx[v] = (vf){} - 3.0e38f; sv[v] = (vf){}; }
    for (int i = 0; i < c * HID; i++) acc[i] = 0.f;
    for (int p0 = 0; p0 < p; p0 += BLK) {
        const int nb = p - p0 < BLK ? p - p0 : BLK;
        const float *xj = xn + p0 * c;
        for (int j = 0; j < nb; j++)
            for (int v0 = 0; v0 < NV; v0 += CH1) {
                vf r[CH1] = {};  /* CH1 independent sums: no chain of dependent FMAs */
                for (int k = 0; k < c; k++)
#pragma GCC unroll 8
                    for (int v = 0; v < CH1; v++) r[v] += load(wk_t + k * HID + (v0 + v) * VW) * xj[j * c + k];
#pragma GCC unroll 8
                for (int v = 0; v < CH1; v++) z[j][v0 + v] = r[v];
            }
        vf scale[HID / VW];
        for (int v = 0; v < HID / VW; v++) {
            vf bm = mx[v], t = {};
            for (int j = 0; j < nb; j++) bm = vmax(bm, z[j][v]);
            scale[v] = vexp(mx[v] - bm);
            mx[v] = bm;
            for (int j = 0; j < nb; j++) { z[j][v] = vexp(z[j][v] - bm); t += z[j][v]; }
            sv[v] = sv[v] * scale[v] + t;
        }
        for (int k = 0; k < c; k++)
            for (int v0 = 0; v0 < NV; v0 += CH1) {
                vf u[CH1];
#pragma GCC unroll 8
                for (int v = 0; v < CH1; v++) u[v] = load(acc + k * HID + (v0 + v) * VW) * scale[v0 + v];
                for (int j = 0; j < nb; j++)
#pragma GCC unroll 8
                    for (int v = 0; v < CH1; v++) u[v] += z[j][v0 + v] * xj[j * c + k];
#pragma GCC unroll 8
                for (int v = 0; v < CH1; v++) store(acc + k * HID + (v0 + v) * VW, u[v]);
            }
    }
    for (int v = 0; v < HID / VW; v++) { store(s + v * VW, sv[v]); store(mx_out + v * VW, mx[v]); }
}

/* out[d] = sum_k v[k] w[k][d] for d < HID: lane vectors v (c) times a (c, HID) matrix, 8 independent sums */
static void lanes_times(const vf *v, int c, const float *w, vf *out) {
    for (int d0 = 0; d0 < HID; d0 += 8) {
        vf r[8] = {};
        for (int k = 0; k < c; k++)
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] += v[k] * w[k * HID + d0 + i];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) out[d0 + i] = r[i];
    }
}

/* The queries of VW positions of one image, one position per SIMD lane (nb <= VW of them real, the rest
   zero): their input xt (c), q = softmax over each head's features of W_q xn (HID), and the output before
   its LN scale, ohat = LN(q . m + b_out) without g_out (c), with its 1 / std (rstd). */
static void query_block(const float *xn, int nb, int c, int heads, const float *wq_t, const float *m,
                        const float *b_out, vf *xt, vf *q, vf *ohat, vf *rstd) {
    const int dim_head = HID / heads;
    for (int k = 0; k < c; k++)
        for (int l = 0; l < VW; l++) xt[k][l] = l < nb ? xn[l * c + k] : 0.f;
    lanes_times(xt, c, wq_t, q);
    for (int h = 0; h < heads; h++) {
        vf *qh = q + h * dim_head, hm = qh[0], hs = {};
        for (int e = 1; e < dim_head; e++) hm = vmax(hm, qh[e]);
        for (int e = 0; e < dim_head; e++) { qh[e] = vexp(qh[e] - hm); hs += qh[e]; }
        hs = 1.f / hs;
        for (int e = 0; e < dim_head; e++) qh[e] *= hs;
    }
    vf mean = {}, var = {};
    for (int k2 = 0; k2 < c; k2++) {
        vf r[8] = {};  /* 8 partial sums */
        for (int d = 0; d < HID; d += 8)
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] += q[d + i] * m[k2 * HID + d + i];
        ohat[k2] = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7])) + b_out[k2];
        mean += ohat[k2];
    }
    mean /= (float)c;
    for (int k2 = 0; k2 < c; k2++) var += (ohat[k2] - mean) * (ohat[k2] - mean);
    var = var / (float)c + 1e-5f;
    float *vp = (float *)&var;
#pragma omp simd
    for (int l = 0; l < VW; l++) vp[l] = 1.f / sqrtf(vp[l]);
    for (int k2 = 0; k2 < c; k2++) ohat[k2] = (ohat[k2] - mean) * var;
    *rstd = var;
}

/* out = x + ohat g_out for the nb positions of a query block */
static void queries(const float *xn, const float *x, int nb, int c, int heads, const float *wq_t, const float *m,
                    const float *b_out, const float *g_out, float *out) {
    vf xt[MAXC], q[HID], o[MAXC], rstd;
    query_block(xn, nb, c, heads, wq_t, m, b_out, xt, q, o, &rstd);
    for (int l = 0; l < nb; l++)
        for (int k2 = 0; k2 < c; k2++) out[l * c + k2] = x[l * c + k2] + o[k2][l] * g_out[k2];
}

/* m[c'][h d] = sum_c acc[c][h d] a[h][c][c'] / s[h d]: the keys' context through the values and output
   projection, folded (a: (heads, c, c)) */
static void fold(const float *acc, const float *s, const float *a, int c, int heads, float *m) {
    const int dim_head = HID / heads;
    for (int k2 = 0; k2 < c; k2++) {
        float u[HID] = {0};
        for (int k = 0; k < c; k++)
            for (int h = 0; h < heads; h++) {
                const float av = a[(h * c + k) * c + k2];
#pragma omp simd
                for (int e = 0; e < dim_head; e++) u[h * dim_head + e] += acc[k * HID + h * dim_head + e] * av;
            }
#pragma omp simd
        for (int d = 0; d < HID; d++) m[k2 * HID + d] = u[d] / s[d];
    }
}

/* x, out: (n, p, c) channels-last images; g_in, b_out, g_out: (c); wq_t, wk_t: (c, 128), the q and k
   projections transposed; a: (heads, c, c), a[h][c][c'] = sum_e W_v[h e][c] W_out[c'][h e] * scale / p.
   stats: (n, (2 + c) * 128) or NULL: each image's key maxima, sums and context (for the backward).
   Returns 1 when the shapes do not fit (c > 64 or 128 not a multiple of heads) or memory runs out. */
int linear_attention_forward(const float *x, long n, int p, int c, int heads, const float *g_in,
                             const float *wq_t, const float *wk_t, const float *a, const float *b_out,
                             const float *g_out, float *out, float *stats, int threads) {
    if (c > MAXC || HID % heads) return 1;
    int fail = 0;
#pragma omp parallel num_threads(threads)
    {
        float *xn = malloc(sizeof(float) * (size_t)p * c);
        if (!xn) {
#pragma omp atomic write
            fail = 1;
        }
        float acc[MAXC * HID], m[MAXC * HID], s[HID], mx[HID];
#pragma omp for schedule(static)
        for (long b = 0; b < n; b++) {
            if (!xn) continue;
            const float *xb = x + b * p * c;
            for (int i = 0; i < p; i++) layer_norm(xb + i * c, c, g_in, xn + i * c);
            keys(xn, p, c, wk_t, acc, s, mx);
            if (stats) {  /* what the backward needs: mx, s, acc */
                float *st = stats + b * (2 + c) * HID;
                for (int d = 0; d < HID; d++) { st[d] = mx[d]; st[HID + d] = s[d]; }
                for (int i = 0; i < c * HID; i++) st[2 * HID + i] = acc[i];
            }
            fold(acc, s, a, c, heads, m);
            for (int p0 = 0; p0 < p; p0 += VW)
                queries(xn + p0 * c, xb + p0 * c, p - p0 < VW ? p - p0 : VW, c, heads, wq_t, m, b_out, g_out,
                        out + b * p * c + p0 * c);
        }
        free(xn);
    }
    return fail;
}

/* LayerNorm's backward over c values: given xhat = (x - mean) * rstd and dxhat (the gradient with respect
   to xhat), the gradient with respect to x */
static void layer_norm_backward(const float *xhat, const float *dxhat, int c, float rstd, float *dx) {
    float m1 = 0.f, m2 = 0.f;
    for (int i = 0; i < c; i++) { m1 += dxhat[i]; m2 += dxhat[i] * xhat[i]; }
    m1 /= c, m2 /= c;
    for (int i = 0; i < c; i++) dx[i] = rstd * (dxhat[i] - m1 - xhat[i] * m2);
}

/* The backward of queries() for VW positions in the lanes: recomputes q, o and the output LN; adds the
   gradients of g_out and b_out (gg_out, gb) and of xn (dxn, (nb, c)), and leaves in its lanes what the
   gradients of m and wq_t need: q (HID), d o (g, c), d z (dq, HID) and xn (xt, c). */
static void queries_backward(const float *xn, const float *gy, int nb, int c, int heads, const float *wq_t,
                             const float *m, const float *b_out, const float *g_out, float *gg_out, float *gb,
                             float *dxn, vf *q, vf *g, vf *dq, vf *xt) {
    const int dim_head = HID / heads;
    vf o[MAXC], var;
    query_block(xn, nb, c, heads, wq_t, m, b_out, xt, q, o, &var);
    for (int k = 0; k < c; k++)
        for (int l = 0; l < VW; l++) g[k][l] = l < nb ? gy[l * c + k] : 0.f;
    /* the output LN: y = x + ohat g_out, ohat = (o - mean) rstd (in o) */
    vf m1 = {}, m2 = {};
    for (int k2 = 0; k2 < c; k2++) {
        gg_out[k2] += hsum(g[k2] * o[k2]);
        g[k2] *= g_out[k2];             /* d ohat */
        m1 += g[k2];
        m2 += g[k2] * o[k2];
    }
    m1 /= (float)c, m2 /= (float)c;
    for (int k2 = 0; k2 < c; k2++) {
        g[k2] = var * (g[k2] - m1 - o[k2] * m2);  /* d o */
        gb[k2] += hsum(g[k2]);
    }
    /* o = q . m + b: dq[d] = sum_c' do[c'] m[c'][d]; dm[c'][d] += q[d] do[c'] */
    lanes_times(g, c, m, dq);
    /* the softmax over each head's features: dz = q (dq - sum_e q dq) */
    for (int h = 0; h < heads; h++) {
        vf t = {};
        for (int e = 0; e < dim_head; e++) t += q[h * dim_head + e] * dq[h * dim_head + e];
        for (int e = 0; e < dim_head; e++) dq[h * dim_head + e] = q[h * dim_head + e] * (dq[h * dim_head + e] - t);
    }
    /* z = W_q xn: dxn[c] += sum_d dz[d] W_q[d][c] */
    for (int k = 0; k < c; k++) {
        vf r[8] = {};
        for (int d = 0; d < HID; d += 8)
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) r[i] += dq[d + i] * wq_t[k * HID + d + i];
        const vf t = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (int l = 0; l < nb; l++) dxn[l * c + k] += t[l];
    }
}

/* The gradients of linear_attention_forward: given x, the upstream gradient gy (n, p, c) and the forward's
   stats, writes gx (n, p, c) and adds the parameters' gradients to gg_in, gb_out, gg_out (c), gwq_t, gwk_t
   (c, 128) and ga (heads, c, c), which the caller zeroes. Returns 1 as the forward does. */
int linear_attention_backward(const float *x, const float *gy, long n, int p, int c, int heads, const float *g_in,
                              const float *wq_t, const float *wk_t, const float *a, const float *b_out,
                              const float *g_out, const float *stats, float *gx, float *gg_in, float *gwq_t,
                              float *gwk_t, float *ga, float *gb_out, float *gg_out, int threads) {
    if (c > MAXC || HID % heads) return 1;
    const int dim_head = HID / heads;
    int fail = 0;
#pragma omp parallel num_threads(threads)
    {
        float *xn = malloc(sizeof(float) * (size_t)p * c), *dxn = malloc(sizeof(float) * (size_t)p * c);
        float *pwk = calloc((size_t)c * HID, sizeof(float)), *pa = calloc((size_t)heads * c * c, sizeof(float));
        float pg_in[MAXC] = {0}, pb[MAXC] = {0}, pg_out[MAXC] = {0};
        vf *dm = aligned_alloc(64, sizeof(vf) * (size_t)c * HID), *gwq = aligned_alloc(64, sizeof(vf) * (size_t)c * HID);
        vf *gq = aligned_alloc(64, sizeof(vf) * GROUP * (2 * HID + 2 * MAXC));
        vf *gdz = gq + GROUP * HID, *gg = gdz + GROUP * HID, *gx_t = gg + GROUP * MAXC;
        const int ok = xn && dxn && pwk && pa && dm && gwq && gq;
        if (!ok) {
#pragma omp atomic write
            fail = 1;
        } else
            for (int i = 0; i < c * HID; i++) gwq[i] = (vf){};
        float kx[MAXC * HID], m[MAXC * HID], dmf[MAXC * HID], dkx[MAXC * HID], rk[HID];
#pragma omp for schedule(static)
        for (long b = 0; b < n; b++) {
            if (!ok) continue;
            const float *xb = x + b * p * c, *gyb = gy + b * p * c, *st = stats + b * (2 + c) * HID;
            const float *mx = st, *s = st + HID, *acc = st + 2 * HID;
            for (int i = 0; i < p; i++) layer_norm(xb + i * c, c, g_in, xn + i * c);
            for (int i = 0; i < p * c; i++) dxn[i] = 0.f;
            for (int k = 0; k < c; k++)
                for (int d = 0; d < HID; d++) kx[k * HID + d] = acc[k * HID + d] / s[d];
            fold(acc, s, a, c, heads, m);
            for (int i = 0; i < c * HID; i++) dm[i] = (vf){};
            /* GROUP blocks of VW positions, then their sums into dm[c'][d] += q[d] d o[c'] and
               gwq[c][d] += dz[d] xn[c] (lanes kept: one pass over those accumulators per GROUP blocks) */
            for (int p0 = 0; p0 < p; p0 += GROUP * VW) {
                int ng = 0;
                for (; ng < GROUP && p0 + ng * VW < p; ng++) {
                    const int at = p0 + ng * VW;
                    queries_backward(xn + at * c, gyb + at * c, p - at < VW ? p - at : VW, c, heads, wq_t, m, b_out,
                                     g_out, pg_out, pb, dxn + at * c, gq + ng * HID, gg + ng * MAXC, gdz + ng * HID,
                                     gx_t + ng * MAXC);
                }
                for (int i = ng; i < GROUP; i++) {  /* empty slots add nothing */
                    for (int k = 0; k < MAXC; k++) gg[i * MAXC + k] = gx_t[i * MAXC + k] = (vf){};
                    for (int d = 0; d < HID; d++) gq[i * HID + d] = gdz[i * HID + d] = (vf){};
                }
                for (int k2 = 0; k2 < c; k2++)
                    for (int d = 0; d < HID; d++) {
                        vf t = dm[k2 * HID + d];
                        for (int i = 0; i < GROUP; i++) t += gq[i * HID + d] * gg[i * MAXC + k2];
                        dm[k2 * HID + d] = t;
                    }
                for (int k = 0; k < c; k++)
                    for (int d = 0; d < HID; d++) {
                        vf t = gwq[k * HID + d];
                        for (int i = 0; i < GROUP; i++) t += gdz[i * HID + d] * gx_t[i * MAXC + k];
                        gwq[k * HID + d] = t;
                    }
            }
            for (int i = 0; i < c * HID; i++) dmf[i] = hsum(dm[i]);
            /* m[c'][d] = sum_c kx[c][d] a[h][c][c']: dkx and the gradient of a */
            for (int k = 0; k < c; k++)
                for (int h = 0; h < heads; h++)
                    for (int k2 = 0; k2 < c; k2++) {
                        float t = 0.f;
#pragma omp simd reduction(+ : t)
                        for (int e = 0; e < dim_head; e++) {
                            const int d = h * dim_head + e;
                            t += kx[k * HID + d] * dmf[k2 * HID + d];
                        }
                        pa[(h * c + k) * c + k2] += t;
                    }
            for (int k = 0; k < c; k++)
                for (int h = 0; h < heads; h++) {
                    float u[HID] = {0};
                    for (int k2 = 0; k2 < c; k2++) {
                        const float av = a[(h * c + k) * c + k2];
#pragma omp simd
                        for (int e = 0; e < dim_head; e++) u[e] += dmf[k2 * HID + h * dim_head + e] * av;
                    }
                    for (int e = 0; e < dim_head; e++) dkx[k * HID + h * dim_head + e] = u[e];
                }
            /* kx[c][d] = sum_p K[d][p] xn[p][c], K = softmax over p: dz[d][p] = K (dK - rk[d]),
               dK[d][p] = sum_c dkx[c][d] xn[p][c], rk[d] = sum_p K dK = sum_c dkx[c][d] kx[c][d] */
            for (int d = 0; d < HID; d++) {
                float t = 0.f;
                for (int k = 0; k < c; k++) t += dkx[k * HID + d] * kx[k * HID + d];
                rk[d] = t;
            }
            for (int j = 0; j < p; j++) {
                const float *xj = xn + j * c;
                vf r[MAXC];  /* dxn[j][k]'s lanes, summed over the chunks of features */
                for (int v0 = 0; v0 < NV; v0 += CH2) {
                    const int o = v0 * VW;
                    vf z[CH2] = {}, dk[CH2] = {};
                    for (int k = 0; k < c; k++)
#pragma GCC unroll 8
                        for (int v = 0; v < CH2; v++) {
                            z[v] += load(wk_t + k * HID + o + v * VW) * xj[k];
                            dk[v] += load(dkx + k * HID + o + v * VW) * xj[k];
                        }
#pragma GCC unroll 8
                    for (int v = 0; v < CH2; v++) {
                        z[v] = vexp(z[v] - load(mx + o + v * VW)) / load(s + o + v * VW);  /* K */
                        dk[v] = z[v] * (dk[v] - load(rk + o + v * VW));                    /* dz */
                    }
                    for (int k = 0; k < c; k++) {
                        vf t = v0 ? r[k] : (vf){};
#pragma GCC unroll 8
                        for (int v = 0; v < CH2; v++) {
                            store(pwk + k * HID + o + v * VW, load(pwk + k * HID + o + v * VW) + dk[v] * xj[k]);
                            t += z[v] * load(dkx + k * HID + o + v * VW) + dk[v] * load(wk_t + k * HID + o + v * VW);
                        }
                        r[k] = t;
                    }
                }
                for (int k = 0; k < c; k++) dxn[j * c + k] += hsum(r[k]);
            }
            /* the input LN and the residual */
            for (int j = 0; j < p; j++) {
                const float *xj = xb + j * c;
                float mean = 0.f, var = 0.f, xh[MAXC], dxh[MAXC], dx[MAXC];
                for (int k = 0; k < c; k++) mean += xj[k];
                mean /= c;
                for (int k = 0; k < c; k++) var += (xj[k] - mean) * (xj[k] - mean);
                const float rstd = 1.f / sqrtf(var / c + 1e-5f);
                for (int k = 0; k < c; k++) {
                    xh[k] = (xj[k] - mean) * rstd;
                    pg_in[k] += dxn[j * c + k] * xh[k];
                    dxh[k] = dxn[j * c + k] * g_in[k];
                }
                layer_norm_backward(xh, dxh, c, rstd, dx);
                for (int k = 0; k < c; k++) gx[b * p * c + j * c + k] = gyb[j * c + k] + dx[k];
            }
        }
        /* the threads' partial sums, added in thread order: the same result on every call */
#pragma omp for ordered schedule(static, 1)
        for (int t = 0; t < omp_get_num_threads(); t++) {
#pragma omp ordered
            if (ok) {
                for (int i = 0; i < c * HID; i++) { gwq_t[i] += hsum(gwq[i]); gwk_t[i] += pwk[i]; }
                for (int i = 0; i < heads * c * c; i++) ga[i] += pa[i];
                for (int k = 0; k < c; k++) { gg_in[k] += pg_in[k]; gb_out[k] += pb[k]; gg_out[k] += pg_out[k]; }
            }
        }
        free(xn), free(dxn), free(pwk), free(pa), free(dm), free(gwq), free(gq);
    }
    return fail;
}

