/* mfa.c — the libmfa command line: `mfa info | check | bench`.
 *
 *   mfa info    version, which backends can run here, what the cpu context runs on
 *   mfa check   the shared case table (tests/check) on a backend against the float64 reference
 *   mfa bench   timings and GFLOP/s (tools/bench.c)
 *
 * Uses only the public API (mfa.h) and the check library. Exit status: 0 success, 1 a failed
 * check or call, 2 bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "mfa.h"

int mfa_bench_main(int argc, char **argv); /* bench.c */

static void usage(FILE *f) {
    fprintf(f,
            "usage: mfa <command> [options]\n"
            "\n"
            "commands:\n"
            "  info                         version, available backends, cpu description\n"
            "  check [--backend NAME] [--filter SUBSTR] [--seed N] [--verbose]\n"
            "                               run the case table against the float64 reference\n"
            "                               (NAME: cpu, cuda, reference; default: MFA_BACKEND or\n"
            "                               cpu; seed: MFA_SEED or fresh)\n"
            "  bench [options]              time attention; `mfa bench --help` for options\n"
            "  --help                       this text\n");
}

static int cmd_info(void) {
    int major = 0, minor = 0, patch = 0;
    mfa_get_version(&major, &minor, &patch);
    printf("libmfa %d.%d.%d (header %d.%d.%d)\n", major, minor, patch, MFA_VERSION_MAJOR,
           MFA_VERSION_MINOR, MFA_VERSION_PATCH);
    printf("device supported: %s\n", mfa_is_device_supported() ? "yes" : "no");
    static const struct {
        const char *name;
        int32_t backend;
    } backends[] = {
        {"cpu", MFA_BACKEND_CPU}, {"reference", MFA_BACKEND_REFERENCE}, {"cuda", MFA_BACKEND_CUDA}};
    printf("backends:\n");
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        mfa_context_options_t o;
        mfa_context_options_init(&o);
        o.backend = backends[i].backend;
        mfa_context_t ctx = NULL;
        const mfa_error_t e = mfa_create_context_ex(&ctx, &o);
        if (e == MFA_SUCCESS)
            printf("  %-10s available, %d threads: %s\n", backends[i].name,
                   (int)mfa_context_num_threads(ctx), mfa_context_description(ctx));
        else
            printf("  %-10s unavailable: %s (%s)\n", backends[i].name, mfa_error_string(e),
                   mfa_last_error_message(NULL));
        mfa_destroy_context(ctx);
    }
    mfa_context_t def = NULL;
    const mfa_error_t e = mfa_create_context(&def);
    if (e != MFA_SUCCESS) {
        printf("default context: %s (%s)\n", mfa_error_string(e), mfa_last_error_message(NULL));
        return 1;
    }
    printf("default context (MFA_BACKEND, else cpu): %s backend, %d threads\n",
           mfa_context_backend_name(def), (int)mfa_context_num_threads(def));
    mfa_destroy_context(def);
    return 0;
}

static int cmd_check(int argc, char **argv) {
    const char *backend = NULL, *filter = NULL;
    uint64_t seed = 0;
    int have_seed = 0, verbose = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (!val) {
            fprintf(stderr, "mfa check: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (strcmp(a, "--backend") == 0) {
            backend = val;
        } else if (strcmp(a, "--filter") == 0) {
            filter = val;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            seed = strtoull(val, &end, 0);
            if (*end || !*val) {
                fprintf(stderr, "mfa check: --seed wants a number, got '%s'\n\n", val);
                usage(stderr);
                return 2;
            }
            have_seed = 1;
        } else {
            fprintf(stderr, "mfa check: unknown option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (mfa_check_backend_from_name(backend) < 0) {
        fprintf(stderr, "mfa check: unknown backend '%s'\n\n", backend);
        usage(stderr);
        return 2;
    }
    const int failed =
        mfa_check_run_table(backend, filter, have_seed ? seed : mfa_check_seed(), verbose, stdout);
    return failed == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "info") == 0 && argc == 2) return cmd_info();
    if (strcmp(cmd, "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return mfa_bench_main(argc - 1, argv + 1);
    fprintf(stderr, "mfa: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
