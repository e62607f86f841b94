/* params.h — the API edge: validate a caller's params and build the problem backends run. */
#ifndef MFA_PARAMS_H
#define MFA_PARAMS_H

#include "problem.h"

/* Every check of mfa_attention_fwd / _bwd (direction MFA_DIRECTION_*), then *pr is filled and
 * the backend's supports() hook has agreed. Nothing is written to any tensor. */
mfa_error_t mfa_prepare(mfa_context_t context, const mfa_attention_params_t *params, int32_t direction,
                        mfa_problem_t *pr);

#endif
