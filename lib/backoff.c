/* Exponential backoff with jitter (lib/backoff.h). The jitter only shortens a step: spread
 * over a quarter of the step it keeps retries that failed together from coming back together,
 * and it never goes below the configured minimum or above the cap, so an operator's
 * reconnect_min and reconnect_max are real bounds. */
#include "lib/backoff.h"

int64_t backoff_delay(int min_ms, int max_ms, unsigned attempt, uint32_t random)
{
    int64_t min = min_ms > 0 ? min_ms : 1, max = max_ms > min ? max_ms : min;
    int64_t base = min;
    for (unsigned i = 0; i < attempt && base < max; i++)
        base *= 2;
    if (base > max)
        base = max;
    int64_t delay = base - (int64_t)(random % (uint64_t)(base / 4 + 1));
    return delay < min ? min : delay;
}
