/* ac_threshold: see ac_threshold.h and docs/calibration.md §5. All arithmetic
 * in double, every loop in a fixed order, so a merged histogram always gives
 * the same threshold. */
#include "ac_threshold.h"

#include "ac_round.h"

#include <math.h>
#include <stdlib.h>
#include <strings.h>

static const char *const method_names[AC_TH_METHOD_COUNT] = {
    "KL", "MAX", "PERCENTILE9999", "MSE", "ACIQ_GAUSS", "ACIQ_LAPLACE"};

const char *ac_th_method_name(ac_th_method m)
{
    return (unsigned)m < AC_TH_METHOD_COUNT ? method_names[m] : "?";
}

int ac_th_method_parse(const char *name, ac_th_method *m, ac_err *err)
{
    for (int i = 0; i < AC_TH_METHOD_COUNT; i++)
        if (name && strcasecmp(name, method_names[i]) == 0) {
            *m = (ac_th_method)i;
            return AC_OK;
        }
    return ac_err_set(err, AC_E_INVALID,
                      "threshold method '%s' is unknown (use KL, MAX, PERCENTILE9999, MSE, "
                      "ACIQ_GAUSS or ACIQ_LAPLACE)",
                      name ? name : "(null)");
}

bool ac_th_method_needs_hist(ac_th_method m)
{
    return m == AC_TH_KL || m == AC_TH_PERCENTILE9999 || m == AC_TH_MSE;
}

double ac_threshold_finish(double raw, double absmax)
{
    if (!(absmax > AC_TH_FLOOR))
        return AC_TH_FLOOR;
    double th = raw < absmax ? raw : absmax; /* a NaN raw becomes abs-max */
    return th > AC_TH_FLOOR ? th : AC_TH_FLOOR;
}

/* ---- KL ------------------------------------------------------------------------------ */

static double kl_term(double p, double q)
{
    return p * (log10(p + 1e-30) - log10(q + 1e-30));
}

/* KL(P||Q) for the clip after i bins (i a multiple of levels). */
static double kl_at(const uint64_t *hist, int nbins, int i, int levels, double total,
                    bool *valid)
{
    double below = 0.0; /* mass below the clip: Q's normaliser */
    for (int j = 0; j < i; j++)
        below += (double)hist[j];
    double tail = 0.0;
    for (int j = i; j < nbins; j++)
        tail += (double)hist[j];
    *valid = below > 0.0;
    if (!*valid)
        return 0.0;
    int group = i / levels;
    double kl = 0.0;
    for (int g = 0; g < levels; g++) {
        int lo = g * group, hi = lo + group;
        double mass = 0.0;
        int nonempty = 0;
        for (int j = lo; j < hi; j++) {
            mass += (double)hist[j];
            nonempty += hist[j] > 0;
        }
        double q_each = nonempty ? mass / nonempty / below : 0.0;
        for (int j = lo; j < hi; j++) {
            double p = (double)hist[j];
            if (j == i - 1)
                p += tail; /* outliers folded into the last bin */
            p /= total;
            double q = hist[j] ? q_each : 0.0;
            kl += kl_term(p, q);
        }
    }
    return kl;
}

double ac_threshold_kl_hist(const uint64_t *hist, int nbins, double width, int levels)
{
    if (levels < 1 || nbins < levels)
        return 0.0;
    double total = 0.0;
    for (int j = 0; j < nbins; j++)
        total += (double)hist[j];
    if (total == 0.0)
        return 0.0;
    bool found = false;
    double best = 0.0;
    int best_i = nbins;
    for (int i = levels; i <= nbins; i += levels) {
        bool valid;
        double kl = kl_at(hist, nbins, i, levels, total, &valid);
        if (valid && (!found || kl < best)) {
            found = true;
            best = kl;
            best_i = i;
        }
    }
    return (double)best_i * width;
}

/* ---- percentile ------------------------------------------------------------------------ */

double ac_threshold_percentile_hist(const uint64_t *hist, int nbins, double width,
                                    double fraction)
{
    uint64_t total = 0;
    for (int j = 0; j < nbins; j++)
        total += hist[j];
    if (total == 0)
        return 0.0;
    double target = fraction * (double)total;
    uint64_t cum = 0;
    for (int j = 0; j < nbins; j++) {
        cum += hist[j];
        if ((double)cum >= target)
            return ((double)j + 0.5) * width;
    }
    return ((double)nbins - 0.5) * width;
}

/* ---- MSE --------------------------------------------------------------------------------- */

double ac_threshold_mse_hist(const uint64_t *hist, int nbins, double width, int levels)
{
    /* Suffix sums over bins above the clip: count, sum r, sum r^2. */
    double *s0 = malloc(sizeof(double) * 3 * ((size_t)nbins + 1));
    if (!s0)
        return 0.0; /* caller treats 0 as "no answer" and falls back to abs-max */
    double *s1 = s0 + nbins + 1, *s2 = s1 + nbins + 1;
    s0[nbins] = s1[nbins] = s2[nbins] = 0.0;
    for (int j = nbins - 1; j >= 0; j--) {
        double h = (double)hist[j];
        double r = j == 0 ? 0.25 * width : (double)j * width;
        s0[j] = s0[j + 1] + h;
        s1[j] = s1[j + 1] + h * r;
        s2[j] = s2[j + 1] + h * r * r;
    }
    double total = s0[0];
    double best_c = 0.0, best = 0.0;
    if (total > 0.0) {
        double noise_k = 1.0 / (12.0 * (double)levels * (double)levels);
        double top = (double)(nbins - 1) * width;
        for (int k = 0; k < nbins; k++) {
            double c = ((double)k + 0.5) * width;
            if (c > top)
                c = top;
            double inside = total - s0[k + 1];
            /* sum over bins above k of h*(r - c)^2 = S2 - 2c*S1 + c^2*S0 */
            double clip = s2[k + 1] - 2.0 * c * s1[k + 1] + c * c * s0[k + 1];
            double err = c * c * noise_k * inside + clip;
            if (k == 0 || err < best) {
                best = err;
                best_c = c;
            }
        }
    }
    free(s0);
    return best_c;
}

/* ---- tuning candidates ---------------------------------------------------------------- */

int ac_threshold_tune_candidates(double th, double absmax, int steps, double *out)
{
    out[0] = th;
    if (!(absmax > th) || steps < 1)
        return 1;
    double step = (absmax - th) / steps;
    for (int i = 1; i <= steps; i++)
        out[i] = i == steps ? absmax : th + (double)i * step;
    return steps + 1;
}

/* ---- per tensor ------------------------------------------------------------------------- */

int ac_threshold_compute(const ac_calib_stats *st, ac_th_method m, ac_threshold *out,
                         ac_err *err)
{
    if ((unsigned)m >= AC_TH_METHOD_COUNT)
        return ac_err_set(err, AC_E_INVALID, "threshold method %d is out of range", (int)m);
    if (ac_calib_stats_count(st) == 0)
        return ac_err_set(err, AC_E_INVALID,
                          "threshold (%s): no finite value was observed for this tensor",
                          ac_th_method_name(m));
    const float absmax_f = ac_calib_stats_absmax(st);
    const double absmax = (double)absmax_f;
    out->min = ac_calib_stats_min(st);
    out->max = ac_calib_stats_max(st);
    out->is_signed = out->min < 0.0f;

    double raw = absmax;
    if (absmax > AC_TH_FLOOR && ac_th_method_needs_hist(m)) {
        if (!ac_calib_stats_has_hist(st))
            return ac_err_set(err, AC_E_INVALID,
                              "threshold (%s): the statistics have no histogram (pass 2 missing)",
                              ac_th_method_name(m));
        if (ac_calib_stats_hist_absmax(st) != absmax_f)
            return ac_err_set(err, AC_E_INVALID,
                              "threshold (%s): histogram range %.9g is not the tensor's abs-max "
                              "%.9g (pass 2 must use the merged pass-1 abs-max)",
                              ac_th_method_name(m), (double)ac_calib_stats_hist_absmax(st),
                              absmax);
        if (m == AC_TH_KL && ac_calib_stats_nbins(st) < AC_TH_KL_LEVELS)
            return ac_err_set(err, AC_E_INVALID, "threshold (KL): needs at least %d bins, got %d",
                              AC_TH_KL_LEVELS, ac_calib_stats_nbins(st));
    }
    const uint64_t *hist = ac_calib_stats_hist(st);
    const int nbins = ac_calib_stats_nbins(st);
    const double width = ac_calib_stats_hist_width(st);
    if (absmax > AC_TH_FLOOR) {
        switch (m) {
        case AC_TH_KL:
            raw = ac_threshold_kl_hist(hist, nbins, width, AC_TH_KL_LEVELS);
            break;
        case AC_TH_MAX:
            raw = absmax;
            break;
        case AC_TH_PERCENTILE9999:
            raw = ac_threshold_percentile_hist(hist, nbins, width, 0.9999);
            break;
        case AC_TH_MSE:
            raw = ac_threshold_mse_hist(hist, nbins, width, out->is_signed ? 127 : 255);
            break;
        case AC_TH_ACIQ_GAUSS:
            raw = AC_TH_ACIQ_GAUSS_K * sqrt(ac_calib_stats_mean_sq(st));
            break;
        case AC_TH_ACIQ_LAPLACE:
            raw = AC_TH_ACIQ_LAPLACE_K * ac_calib_stats_mean_abs(st);
            break;
        default:
            break;
        }
        /* A histogram method with an empty histogram (every value was 0 in
         * pass 2, which pass 1 contradicts) has no answer: use abs-max. */
        if (raw <= 0.0 && ac_th_method_needs_hist(m))
            raw = absmax;
    }
    out->raw = raw;
    out->th = ac_threshold_finish(raw, absmax);
    out->scale = ac_scale_from_th(out->th, out->is_signed);
    return AC_OK;
}
