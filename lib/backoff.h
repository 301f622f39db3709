/* The reconnect schedule shared by the component link (transport/component.c) and the
 * legacy logins (bridge/session.c): exponential backoff with jitter, as a pure function so
 * that the schedule is tested exactly. Callers supply the random number (random_bytes in
 * production, fixed values in tests). */
#ifndef FERRY_LIB_BACKOFF_H
#define FERRY_LIB_BACKOFF_H

#include <stdint.h>

/* The delay in ms before retry number attempt (0 for the first retry after a failure).
 * base = min_ms doubled attempt times, capped at max_ms; the delay is base less a jitter of
 * up to a quarter of base, taken from random, and never below min_ms. So the first retry
 * waits exactly min_ms, and every delay lies in [min_ms, max_ms]. min_ms below 1 counts as
 * 1; a max_ms below min_ms counts as min_ms. */
int64_t backoff_delay(int min_ms, int max_ms, unsigned attempt, uint32_t random);

#endif
