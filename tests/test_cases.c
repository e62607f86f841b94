/* test_cases.c — the shared case table (tests/check/cases.c) against the float64 reference.
 *
 * Runs every case on the backend named by MFA_TEST_BACKEND ("cpu" by default, "cuda",
 * "reference"), one line per case, and exits non-zero on any failure. On cpu and reference a
 * SKIP (backend refused a case) also fails: those backends must run every case. Environment:
 *   MFA_SEED=N          replay the inputs of an earlier run (the seed is printed)
 *   MFA_TEST_FILTER=S   only cases whose name contains S
 *   MFA_TEST_VERBOSE=1  per-output error statistics
 *   MFA_CPU_ISA=X       the cpu kernel table to test; exits 77 (ctest: skipped) when this CPU
 *                       cannot run it, so one ctest entry per table covers what each machine has */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* True when the cpu backend really runs the table MFA_CPU_ISA names (it falls back otherwise). */
static int cpu_runs_requested_isa(void) {
    const char *isa = getenv("MFA_CPU_ISA");
    if (!isa || !*isa) return 1;
    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    mfa_context_t ctx;
    if (mfa_create_context_ex(&ctx, &opt) != MFA_SUCCESS) return 1; /* the table run reports it */
    char want[64];
    snprintf(want, sizeof want, "cpu: %s kernels", isa);
    const int ok = strncmp(mfa_context_description(ctx), want, strlen(want)) == 0;
    if (!ok) printf("SKIP: %s (wanted MFA_CPU_ISA=%s)\n", mfa_context_description(ctx), isa);
    mfa_destroy_context(ctx);
    return ok;
}

int main(void) {
    const char *backend = getenv("MFA_TEST_BACKEND");
    if (!backend || !*backend) backend = "cpu";
    if (!strcmp(backend, "cpu") && !cpu_runs_requested_isa()) return 77;
    const char *verbose = getenv("MFA_TEST_VERBOSE");
    const int failed = mfa_check_run_table(backend, getenv("MFA_TEST_FILTER"), mfa_check_seed(),
                                           verbose && atoi(verbose) > 0, stdout);
    return failed == 0 ? 0 : 1;
}
