/* lrsa_vexpf (kernels/cpu/vexp.h) against the correctly rounded e^x (libm's double exp rounded
 * to float) over an even sweep of float bit patterns, against libm's expf, and at the special
 * inputs. bench_vexp sweeps every float (docs/KERNELS.md has its result). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernels/cpu/vexp.h"
#include "test_util.h"

/* Distance in units of the last place of the correctly rounded reference (its float spacing,
 * 2^-149 for subnormals). */
static double ulps(float got, double ref) {
    float rf = (float)ref;
    if (got == rf) return 0.0;
    if (isinf(rf) || isinf(got) || isnan(got)) return INFINITY;
    int e;
    frexp((double)rf, &e);
    double ulp = ldexp(1.0, e - 24);
    if (ulp < ldexp(1.0, -149)) ulp = ldexp(1.0, -149);
    return fabs((double)got - ref) / ulp;
}

enum { BATCH = 4096 };

static void test_sweep(void **state) {
    (void)state;
    static float xs[BATCH], ys[BATCH];
    double worst = 0.0, worst_sub = 0.0;
    float worst_x = 0.0f;
    long n = 0, differ = 0;
    int nb = 0;
    const uint64_t stride = 997; /* ~4.3M patterns, every exponent and many mantissas */
    for (uint64_t b = 0; b <= 0xffffffffu; b += stride) {
        uint32_t u = (uint32_t)b;
        float x;
        memcpy(&x, &u, sizeof x);
        if (!(x > -110.0f && x < 95.0f)) continue; /* beyond: 0 or inf, checked below */
        xs[nb++] = x;
        if (nb < BATCH && b + stride <= 0xffffffffu) continue;
#pragma omp simd
        for (int i = 0; i < nb; i++) ys[i] = lrsa_vexpf(xs[i]);
        for (int i = 0; i < nb; i++) {
            double ref = exp((double)xs[i]);
            double err = ulps(ys[i], ref);
            if ((float)ref < 1.17549435e-38f) { /* subnormal or zero result */
                if (err > worst_sub) worst_sub = err;
            } else if (err > worst) {
                worst = err, worst_x = xs[i];
            }
            differ += ys[i] != expf(xs[i]);
            n++;
        }
        nb = 0;
    }
    printf("%ld inputs: max %.3f ulp (at %.9g), subnormal results max %.3f x 2^-149; "
           "%.3f%% differ from libm expf\n",
           n, worst, (double)worst_x, worst_sub, 100.0 * (double)differ / (double)n);
    assert_true(n > 2000000);
    assert_true(worst <= LRSA_VEXP_MAX_ULP);
    assert_true(worst_sub <= 1.0);
}

static void test_specials(void **state) {
    (void)state;
    assert_true(isnan(lrsa_vexpf(NAN)));
    assert_true(isnan(lrsa_vexpf(-NAN)));
    assert_true(lrsa_vexpf(INFINITY) == INFINITY);
    assert_true(lrsa_vexpf(-INFINITY) == 0.0f);
    assert_true(lrsa_vexpf(0.0f) == 1.0f); /* exactly: the online softmax relies on it */
    assert_true(lrsa_vexpf(-0.0f) == 1.0f);
    assert_true(lrsa_vexpf(1e30f) == INFINITY);
    assert_true(lrsa_vexpf(-1e30f) == 0.0f);
    assert_true(lrsa_vexpf(88.7228394f) == INFINITY);          /* e^x > FLT_MAX from here */
    assert_true(lrsa_vexpf(88.7228317f) == expf(88.7228317f)); /* largest finite result */
    assert_true(lrsa_vexpf(-103.972084f) == 0.0f);
    assert_true(lrsa_vexpf(-103.2789f) == ldexpf(1.0f, -149));   /* smallest subnormal */
    assert_true(lrsa_vexpf(-87.3365479f) == expf(-87.3365479f)); /* ~ FLT_MIN */
    assert_true(lrsa_vexpf(1.0f) == expf(1.0f));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_specials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
