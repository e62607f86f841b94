/* context.c — contexts: backend choice (and plugin loading), threads, version queries. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backend.h"
#include "context.h"

/* A GPU backend lives in its own shared object so libmfa.so never links CUDA. The plugin
 * exports this one function; its table must carry MFA_BACKEND_INTERFACE_VERSION. */
#define MFA_PLUGIN_ENTRY "mfa_plugin_backend"
typedef const mfa_backend_t *(*mfa_plugin_entry_fn)(void);

mfa_context *mfa_context_from_handle(mfa_context_t handle) {
    mfa_context *ctx = handle;
    return ctx && ctx->magic == MFA_CONTEXT_MAGIC ? ctx : NULL;
}

void mfa_get_version(int *major, int *minor, int *patch) {
    if (major) *major = MFA_VERSION_MAJOR;
    if (minor) *minor = MFA_VERSION_MINOR;
    if (patch) *patch = MFA_VERSION_PATCH;
}

bool mfa_is_device_supported(void) { return true; /* the cpu backend runs everywhere */ }

void mfa_context_options_init(mfa_context_options_t *options) {
    if (!options) return;
    memset(options, 0, sizeof *options);
    options->struct_size = sizeof *options;
    options->backend = MFA_BACKEND_AUTO;
}

/* Opens libmfa_cuda.so from the directory libmfa.so was loaded from, then the loader's path. */
static mfa_error_t load_plugin(const char *file, void **handle, const mfa_backend_t **backend) {
    char path[4096];
    Dl_info self;
    void *h = NULL;
    if (dladdr((void *)&load_plugin, &self) && self.dli_fname) {
        const char *slash = strrchr(self.dli_fname, '/');
        if (slash) {
            snprintf(path, sizeof path, "%.*s/%s", (int)(slash - self.dli_fname), self.dli_fname, file);
            h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        }
    }
    if (!h) h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        return mfa_set_error(NULL, MFA_ERROR_DEVICE_NOT_SUPPORTED,
                             "backend plugin %s could not be loaded: %s", file, why ? why : "unknown reason");
    }
    mfa_plugin_entry_fn entry;
    void *sym = dlsym(h, MFA_PLUGIN_ENTRY);
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, as POSIX allows */
    const mfa_backend_t *b = entry ? entry() : NULL;
    if (!b || b->interface_version != MFA_BACKEND_INTERFACE_VERSION) {
        dlclose(h);
        return mfa_set_error(NULL, MFA_ERROR_DEVICE_NOT_SUPPORTED,
                             "backend plugin %s does not provide interface version %d", file,
                             MFA_BACKEND_INTERFACE_VERSION);
    }
    *handle = h;
    *backend = b;
    return MFA_SUCCESS;
}

static int32_t default_threads(void) {
    const char *env = getenv("MFA_NUM_THREADS");
    if (env && *env) {
        long n = strtol(env, NULL, 10);
        if (n >= 1 && n <= 4096) return (int32_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (int32_t)n : 1;
}

/* MFA_BACKEND_AUTO resolves to the MFA_BACKEND environment variable, else cpu. */
static mfa_error_t resolve_backend(int32_t requested, int32_t *out) {
    if (requested != MFA_BACKEND_AUTO) {
        *out = requested;
        return MFA_SUCCESS;
    }
    const char *env = getenv("MFA_BACKEND");
    if (!env || !*env || !strcasecmp(env, "cpu") || !strcasecmp(env, "auto")) *out = MFA_BACKEND_CPU;
    else if (!strcasecmp(env, "cuda")) *out = MFA_BACKEND_CUDA;
    else if (!strcasecmp(env, "reference")) *out = MFA_BACKEND_REFERENCE;
    else return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS,
                              "environment MFA_BACKEND=\"%s\" is not one of cpu, cuda, reference", env);
    return MFA_SUCCESS;
}

mfa_error_t mfa_create_context_ex(mfa_context_t *context, const mfa_context_options_t *options) {
    if (!context) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "context (the output pointer) is NULL");
    *context = NULL;
    mfa_context_options_t o;
    mfa_context_options_init(&o);
    if (options) {
        if (options->struct_size < sizeof(uint32_t) + 3 * sizeof(int32_t))
            return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS,
                                 "options->struct_size=%u: call mfa_context_options_init first", options->struct_size);
        memcpy(&o, options, options->struct_size < sizeof o ? options->struct_size : sizeof o);
    }
    if (o.num_threads < 0)
        return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "options->num_threads=%d is negative", o.num_threads);
    if (o.device < 0)
        return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "options->device=%d is negative", o.device);
    int32_t kind = MFA_BACKEND_CPU;
    mfa_error_t err = resolve_backend(o.backend, &kind);
    if (err) return err;

    const mfa_backend_t *backend = NULL;
    void *plugin = NULL;
    switch (kind) {
    case MFA_BACKEND_CPU: backend = &mfa_cpu_backend; break;
    case MFA_BACKEND_REFERENCE: backend = &mfa_reference_backend; break;
    case MFA_BACKEND_CUDA:
        err = load_plugin("libmfa_cuda.so", &plugin, &backend);
        if (err) return err;
        break;
    default:
        return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS,
                             "options->backend=%d is not a backend (0=auto, 1=cpu, 2=cuda, 3=reference)", o.backend);
    }

    mfa_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        if (plugin) dlclose(plugin);
        return mfa_set_error(NULL, MFA_ERROR_MEMORY_ALLOCATION, "cannot allocate a context");
    }
    ctx->magic = MFA_CONTEXT_MAGIC;
    ctx->backend = backend;
    ctx->plugin = plugin;
    ctx->device = o.device;
    ctx->num_threads = o.num_threads ? o.num_threads : default_threads();
    snprintf(ctx->description, sizeof ctx->description, "%s", backend->name);
    if (backend->init && (err = backend->init(ctx)) != MFA_SUCCESS) {
        mfa_set_error(NULL, err, "%s", ctx->last_error); /* hand the message to the NULL slot */
        ctx->magic = 0;
        free(ctx);
        if (plugin) dlclose(plugin);
        return err;
    }
    *context = ctx;
    return MFA_SUCCESS;
}

mfa_error_t mfa_create_context(mfa_context_t *context) { return mfa_create_context_ex(context, NULL); }

void mfa_destroy_context(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    if (!ctx) return;
    while (ctx->buffers) mfa_buffer_free(ctx->buffers);
    if (ctx->backend->destroy) ctx->backend->destroy(ctx);
    void *plugin = ctx->plugin;
    ctx->magic = 0;
    free(ctx);
    if (plugin) dlclose(plugin);
}

const char *mfa_context_backend_name(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx ? ctx->backend->name : "";
}

const char *mfa_context_description(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx ? ctx->description : "";
}

int32_t mfa_context_num_threads(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx ? ctx->num_threads : 0;
}

/* ---- Streams, synchronisation, GPU timing (asynchronous backends; plain on the cpu) ---------- */

mfa_error_t mfa_context_set_stream(mfa_context_t handle, void *stream) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    if (!handle) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "mfa_context_set_stream: context is NULL");
    if (!ctx)
        return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "mfa_context_set_stream: context %p is not a live mfa context",
                             handle);
    if (stream == ctx->stream) return MFA_SUCCESS; /* nothing to order: frameworks call this per op */
    if (ctx->backend->set_stream) {
        mfa_error_t err = ctx->backend->set_stream(ctx, stream);
        if (err != MFA_SUCCESS) return err;
    }
    ctx->stream = stream;
    return MFA_SUCCESS;
}

void *mfa_context_get_stream(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx ? ctx->stream : NULL;
}

mfa_error_t mfa_synchronize(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    if (!handle) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "mfa_synchronize: context is NULL");
    if (!ctx)
        return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "mfa_synchronize: context %p is not a live mfa context", handle);
    return ctx->backend->synchronize ? ctx->backend->synchronize(ctx) : MFA_SUCCESS;
}

double mfa_get_gpu_latency(mfa_context_t handle) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    return ctx && ctx->backend->gpu_latency ? ctx->backend->gpu_latency(ctx) : 0.0;
}
