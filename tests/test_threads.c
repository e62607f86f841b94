/* test_threads.c — the cpu backend's worker threads, which a context keeps between calls.
 *
 * - Calls of different sizes on one 4-thread context (one work item, where only the caller
 *   works, then many, then one again) give bitwise the outputs of a 1-thread context: the
 *   forward's items are independent, so which thread ran which must not show.
 * - A process that forks after the workers started gets a context that still works in the
 *   child (the parent's threads do not exist there; the pool starts its own), bitwise the same.
 * - A signal sent to the process while the caller blocks it waits for the caller: no worker
 *   takes it (they block every signal), so the program's handler runs where it expects.
 * - Destroying a context joins its workers: after 20 contexts made, used and destroyed, the
 *   process has its one thread again (read from /proc where there is one).
 * Every run's output is poisoned first. */
#define _POSIX_C_SOURCE 200809L /* sigset_t, pthread_sigmask, kill, nanosleep under -std=c11 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mfa.h"

enum { D = 64, HEADS = 4 };

typedef struct {
    float *q, *k, *v, *o;
    int64_t seq;
} problem_t;

static problem_t make(int64_t seq, unsigned seed) {
    problem_t p = {.seq = seq};
    const size_t n = (size_t)(seq * HEADS * D);
    float **arrays[4] = {&p.q, &p.k, &p.v, &p.o};
    for (int a = 0; a < 4; a++) {
        *arrays[a] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n && *arrays[a]; i++) {
            seed = seed * 1664525u + 1013904223u;
            (*arrays[a])[i] = (float)(seed >> 8) / 4194304.0f - 2.0f;
        }
    }
    return p;
}

static void release(problem_t *p) { free(p->q), free(p->k), free(p->v), free(p->o); }

static mfa_context_t context(int threads) {
    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    opt.num_threads = threads;
    mfa_context_t ctx = NULL;
    return mfa_create_context_ex(&ctx, &opt) == MFA_SUCCESS ? ctx : NULL;
}

/* The causal forward of p into p->o (poisoned first); its output, copied (caller frees). */
static float *forward(mfa_context_t ctx, problem_t *p) {
    const size_t n = (size_t)(p->seq * HEADS * D);
    for (size_t i = 0; i < n; i++) p->o[i] = NAN;
    mfa_attention_params_t a;
    mfa_attention_params_init(&a);
    a.batch = 1, a.seqlen_q = a.seqlen_kv = p->seq, a.heads_q = a.heads_kv = HEADS;
    a.head_dim_qk = a.head_dim_v = D;
    a.mask = MFA_MASK_CAUSAL;
    mfa_tensor_contiguous(&a.q, p->q, MFA_DTYPE_F32, p->seq, HEADS, D);
    mfa_tensor_contiguous(&a.k, p->k, MFA_DTYPE_F32, p->seq, HEADS, D);
    mfa_tensor_contiguous(&a.v, p->v, MFA_DTYPE_F32, p->seq, HEADS, D);
    mfa_tensor_contiguous(&a.o, p->o, MFA_DTYPE_F32, p->seq, HEADS, D);
    if (mfa_attention_fwd(ctx, &a) != MFA_SUCCESS) return NULL;
    float *copy = malloc(n * sizeof(float));
    if (copy) memcpy(copy, p->o, n * sizeof(float));
    return copy;
}

static int same(const char *what, const float *a, const float *b, int64_t seq) {
    const size_t n = (size_t)(seq * HEADS * D);
    if (a && b && memcmp(a, b, n * sizeof(float)) == 0) return 0;
    printf("FAIL %s: outputs differ from the 1-thread context's (or a call failed)\n", what);
    return 1;
}

static pthread_t handled_on;
static volatile sig_atomic_t handled;
static void on_usr1(int sig) {
    (void)sig;
    handled_on = pthread_self();
    handled++;
}

/* SIGUSR1 sent to the process while this thread blocks it: with the workers blocking every
 * signal it can only wait for this thread; a worker that took it would run the handler at once. */
static int signal_waits_for_caller(void) {
    signal(SIGUSR1, on_usr1);
    sigset_t usr1, old;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, &old);
    handled = 0;
    kill(getpid(), SIGUSR1);
    nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    const int early = handled; /* taken by another thread meanwhile */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGUSR1, SIG_DFL);
    if (!early && handled == 1 && pthread_equal(handled_on, pthread_self())) return 0;
    printf("FAIL: a signal for the process ran its handler on %s\n", early ? "a worker" : "no thread, or twice");
    return 1;
}

/* The process's thread count from /proc, or -1 where it cannot be read. */
static int process_threads(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

int main(void) {
    int failures = 0;
    problem_t small = make(7, 1), large = make(700, 2);
    mfa_context_t one = context(1), four = context(4);
    if (!one || !four) return printf("FAIL: no cpu context\n"), 1;
    float *small_ref = forward(one, &small), *large_ref = forward(one, &large);

    /* sizes alternating on one context: the workers sit out the one-item call, then rejoin */
    for (int round = 0; round < 3; round++) {
        float *s = forward(four, &small), *l = forward(four, &large);
        failures += same("small call, 4 threads", s, small_ref, small.seq);
        failures += same("large call, 4 threads", l, large_ref, large.seq);
        free(s), free(l);
    }

    failures += signal_waits_for_caller(); /* the 4-thread context's workers exist now */

    /* fork after the workers started: the child must finish (an alarm ends it otherwise) */
    fflush(stdout);
    const pid_t child = fork();
    if (child == 0) {
        alarm(60);
        float *l = forward(four, &large);
        const int bad = same("large call in a forked child", l, large_ref, large.seq);
        free(l);
        mfa_destroy_context(four);
        _exit(bad);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("FAIL forked child: %s\n", child < 0                ? "fork failed"
                                          : WIFSIGNALED(status)   ? "killed (hung or crashed)"
                                                                  : "wrong output");
        failures++;
    }
    float *after = forward(four, &large); /* and the parent's workers still serve it */
    failures += same("large call in the parent after the fork", after, large_ref, large.seq);
    free(after);
    mfa_destroy_context(four);

    /* contexts made and destroyed: their workers go with them */
    const int before = process_threads();
    for (int i = 0; i < 20; i++) {
        mfa_context_t ctx = context(3);
        float *l = ctx ? forward(ctx, &large) : NULL;
        failures += same("a short-lived 3-thread context", l, large_ref, large.seq);
        free(l);
        mfa_destroy_context(ctx);
    }
    const int end = process_threads();
    if (before >= 0 && end != before) {
        printf("FAIL: %d threads before 20 contexts came and went, %d after\n", before, end);
        failures++;
    }

    mfa_destroy_context(one);
    free(small_ref), free(large_ref);
    release(&small), release(&large);
    if (failures) return printf("%d failure(s)\n", failures), 1;
    printf("threads: sizes alternating, a fork, 20 contexts: all bitwise equal; signals left to the caller; threads joined\n");
    return 0;
}
