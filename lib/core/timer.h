/* timer.h - wall-clock time and peak resident memory of this process. */
#ifndef EG_TIMER_H
#define EG_TIMER_H

// Monotonic wall-clock seconds since an arbitrary origin.
double eg_wall_seconds(void);
// Peak resident set size of this process so far, in MiB (getrusage ru_maxrss).
double eg_peak_rss_mb(void);
// Current resident set size in MiB (from /proc/self/statm; 0 where unavailable).
double eg_current_rss_mb(void);

#endif // EG_TIMER_H
