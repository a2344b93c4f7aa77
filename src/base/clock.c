/*
 * clock.c -- the monotonic clock, in the units remo's deadlines use.
 *
 * Every timeout in remo is a duration (remo.h: per call and explicit),
 * turned into a deadline on CLOCK_MONOTONIC once, when the wait starts,
 * so that a wait woken early (a signal, a message for someone else) goes
 * back to sleep for what is left and not for the whole timeout again.
 */
#include "base/base.h"

#include <limits.h>
#include <time.h>

int64_t remo__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t remo__now_ms_coarse(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t remo__now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t remo__deadline_ms(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : remo__now_ms() + timeout_ms;
}

int remo__ms_left(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t left = deadline - remo__now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}
