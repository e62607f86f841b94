/* threads.c — a parallel for over work items with dynamic hand-out, on a context's own pthreads.
 *
 * The workers are started at the context's first parallel call and kept until the context is
 * destroyed. Starting and joining a thread per call cost about 33 us each time on the 2-core
 * Zen 5 (the worker then joins late); a backward runs three passes and a decode two, so short
 * calls paid it two or three times. Between jobs a worker spins on the job counter for a short
 * while (20 us, or MFA_CPU_SPIN_US from the environment at the context's creation: back-to-back
 * passes of one call, and a caller's next call, find it awake) and then sleeps on a condition
 * variable, so an idle context costs no CPU.
 *
 * If a thread cannot be started, the threads that exist (at least the caller) take every item,
 * so no work is lost. A process that forks gets none of the parent's threads: the pool notices
 * (its pid) and starts its own. pthreads rather than OpenMP so that hosts which load their own
 * OpenMP runtime (PyTorch) cannot clash with ours. A context serves one call at a time, so one
 * job runs at a time. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cpu.h"

enum { MFA_CPU_MAX_WORKERS = 255 }; /* threads besides the caller */
#define MFA_CPU_SPIN_US 20           /* how long a thread spins for a job (or its end) before it sleeps */

typedef struct {
    struct mfa_cpu_pool *pool;
    int thread;
} worker_t;

struct mfa_cpu_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new job, or stop */
    pthread_cond_t done; /* the last worker of a job left it */
    pid_t pid;           /* the process whose threads these are */
    int64_t spin_ns;     /* a thread's spin before it sleeps */
    int workers;         /* started: thread ids 1..workers */
    bool stop;
    pthread_t tid[MFA_CPU_MAX_WORKERS];
    worker_t args[MFA_CPU_MAX_WORKERS];
    /* the current job: workers 1..active take part */
    mfa_cpu_task_fn fn;
    void *arg;
    int64_t n_items;
    int active;
    atomic_int busy;         /* workers of the job not done with it yet */
    atomic_llong next;       /* the next item to hand out */
    atomic_ulong generation; /* bumped (under lock) once per job */
};

static void drain(mfa_cpu_pool_t *pool, int thread) {
    for (;;) {
        const int64_t item = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (item >= pool->n_items) return;
        pool->fn(pool->arg, item, thread);
    }
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Waits until the generation moves past `seen` (or stop): spinning first, then asleep. */
static void next_job(mfa_cpu_pool_t *pool, unsigned long seen) {
    const int64_t until = now_ns() + pool->spin_ns;
    for (unsigned spins = 1;; spins++) {
        if (atomic_load_explicit(&pool->generation, memory_order_acquire) != seen) return;
        if (spins % 256 == 0 && now_ns() > until) break;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&pool->lock);
    while (atomic_load_explicit(&pool->generation, memory_order_acquire) == seen && !pool->stop)
        pthread_cond_wait(&pool->wake, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}

static void *worker_main(void *p) {
    mfa_cpu_pool_t *pool = ((worker_t *)p)->pool;
    const int thread = ((worker_t *)p)->thread;
    unsigned long seen = 0;
    for (;;) {
        next_job(pool, seen);
        /* the job as a whole, read under the lock that published it: each generation is taken
         * at most once, and a worker counted in `busy` cannot miss its job (the next one waits
         * for busy to reach 0) */
        pthread_mutex_lock(&pool->lock);
        const bool stop = pool->stop, mine = thread <= pool->active;
        seen = atomic_load_explicit(&pool->generation, memory_order_relaxed);
        pthread_mutex_unlock(&pool->lock);
        if (stop) return NULL;
        if (!mine) continue;
        drain(pool, thread);
        if (atomic_fetch_sub_explicit(&pool->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock); /* (the caller checks busy under it before sleeping) */
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

/* A fresh pool with no workers (they start on demand). */
static void pool_reset(mfa_cpu_pool_t *pool) {
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->pid = getpid();
    pool->workers = 0, pool->stop = false, pool->active = 0;
    atomic_init(&pool->busy, 0);
    atomic_init(&pool->next, 0);
    atomic_init(&pool->generation, 0);
}

mfa_cpu_pool_t *mfa_cpu_pool_create(void) {
    mfa_cpu_pool_t *pool = malloc(sizeof *pool);
    if (!pool) return NULL;
    pool_reset(pool);
    /* MFA_CPU_SPIN_US: 0 sleeps at once (A/B timing of two libraries in one process, whose
     * spinning workers would take each other's cores); a malformed value keeps the default */
    const char *env = getenv("MFA_CPU_SPIN_US");
    char *end = NULL;
    const long us = env ? strtol(env, &end, 10) : -1;
    pool->spin_ns = (env && *env && !*end && us >= 0 && us <= 1000000 ? us : MFA_CPU_SPIN_US) * (int64_t)1000;
    return pool;
}

void mfa_cpu_pool_destroy(mfa_cpu_pool_t *pool) {
    if (!pool) return;
    if (pool->pid == getpid()) { /* (a forked child has none of these threads to join) */
        pthread_mutex_lock(&pool->lock);
        pool->stop = true;
        atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->lock);
        for (int t = 0; t < pool->workers; t++) pthread_join(pool->tid[t], NULL);
        pthread_cond_destroy(&pool->wake);
        pthread_cond_destroy(&pool->done);
        pthread_mutex_destroy(&pool->lock);
    }
    free(pool);
}

/* Starts workers until there are `want` (fewer if the system refuses). */
static void pool_grow(mfa_cpu_pool_t *pool, int want) {
    if (pool->pid != getpid()) pool_reset(pool); /* forked: the parent's threads are not ours */
    if (want > MFA_CPU_MAX_WORKERS) want = MFA_CPU_MAX_WORKERS;
    /* workers block every signal (they inherit the mask at creation): a process's signals go to
     * its own threads (Python's handler, a server's SIGTERM), never to a thread of ours */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool->workers < want) {
        worker_t *w = &pool->args[pool->workers];
        *w = (worker_t){.pool = pool, .thread = pool->workers + 1};
        if (pthread_create(&pool->tid[pool->workers], NULL, worker_main, w) != 0) break;
        pool->workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int mfa_cpu_threads_for(const mfa_context *ctx, int64_t n_items) {
    int64_t t = ctx->num_threads;
    if (t > n_items) t = n_items;
    if (t > MFA_CPU_MAX_WORKERS + 1) t = MFA_CPU_MAX_WORKERS + 1;
    return t < 1 ? 1 : (int)t;
}

void mfa_cpu_parallel_for(mfa_context *ctx, int threads, int64_t n_items, mfa_cpu_task_fn fn, void *arg) {
    mfa_cpu_pool_t *pool = ((mfa_cpu_state_t *)ctx->backend_state)->pool;
    if (threads <= 1 || !pool) { /* on the caller alone */
        for (int64_t item = 0; item < n_items; item++) fn(arg, item, 0);
        return;
    }
    pool_grow(pool, threads - 1);
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn, pool->arg = arg, pool->n_items = n_items;
    pool->active = threads - 1 < pool->workers ? threads - 1 : pool->workers;
    atomic_store_explicit(&pool->busy, pool->active, memory_order_relaxed);
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    drain(pool, 0);
    const int64_t until = now_ns() + pool->spin_ns; /* the others' last items: usually short */
    for (unsigned spins = 1; atomic_load_explicit(&pool->busy, memory_order_acquire) > 0; spins++) {
        if (spins % 256 == 0 && now_ns() > until) {
            pthread_mutex_lock(&pool->lock);
            while (atomic_load_explicit(&pool->busy, memory_order_acquire) > 0)
                pthread_cond_wait(&pool->done, &pool->lock);
            pthread_mutex_unlock(&pool->lock);
            break;
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}
