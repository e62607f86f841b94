/* threads.c — a parallel for over work items with dynamic hand-out, on pthreads.
 *
 * Threads are started per call: simple and leak-proof; the start cost (tens of microseconds) is
 * small next to a tiled attention call, and tiny calls run on the calling thread alone. If a
 * thread cannot be started, the remaining threads (at least the caller) take all items, so no
 * work is ever lost. pthreads rather than OpenMP so that hosts which load their own OpenMP
 * runtime (PyTorch) cannot clash with ours. */
#include <pthread.h>
#include <stdatomic.h>

#include "cpu.h"

typedef struct {
    mfa_cpu_task_fn fn;
    void *arg;
    int64_t n_items;
    atomic_llong next;
} pool_t;

typedef struct {
    pool_t *pool;
    int thread;
} worker_t;

static void drain(pool_t *pool, int thread) {
    for (;;) {
        const int64_t item = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (item >= pool->n_items) return;
        pool->fn(pool->arg, item, thread);
    }
}

static void *worker_main(void *arg) {
    worker_t *w = arg;
    drain(w->pool, w->thread);
    return NULL;
}

int mfa_cpu_threads_for(const mfa_context *ctx, int64_t n_items) {
    int64_t t = ctx->num_threads;
    if (t > n_items) t = n_items;
    if (t > 256) t = 256;
    return t < 1 ? 1 : (int)t;
}

void mfa_cpu_parallel_for(int threads, int64_t n_items, mfa_cpu_task_fn fn, void *arg) {
    pool_t pool = {.fn = fn, .arg = arg, .n_items = n_items};
    atomic_init(&pool.next, 0);
    pthread_t tid[256];
    worker_t workers[256];
    int started = 0;
    for (int t = 1; t < threads && t < 256; t++) {
        workers[started] = (worker_t){.pool = &pool, .thread = t};
        if (pthread_create(&tid[started], NULL, worker_main, &workers[started]) != 0) break;
        started++;
    }
    drain(&pool, 0);
    for (int t = 0; t < started; t++) pthread_join(tid[t], NULL);
}
