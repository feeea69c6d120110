'use strict';

// Node turns a timer delay above 2^31 - 1 ms into 1 ms (with only a warning), which would make
// a generous timeout from the peer fire at once and an interval spin. Delays come from the
// wire as any integer up to 2^53 - 1, so every timer goes through this clamp.
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * @param {number} ms
 * @returns {number} `ms` limited to what setTimeout/setInterval honour (1 ..= 2^31 - 1)
 */
function timerDelay(ms) {
  return Math.min(Math.max(ms, 1), MAX_TIMER_MS);
}

/**
 * The delay until the next heartbeat: the next multiple of `intervalMs` on the wall clock, so
 * the beats of many hosts reach the supervisor together and it wakes once for all of them
 * instead of once per host. A boundary less than a tenth of an interval away is skipped, so a
 * timer that fires a little early does not send two beats back to back; beats are therefore
 * at most 1.1 intervals apart (plus the timer's own lateness).
 *
 * @param {number} nowMs wall-clock time (`Date.now()`)
 * @param {number} intervalMs the heartbeat interval, already clamped by `timerDelay`
 * @returns {number} milliseconds, in [intervalMs / 10, intervalMs * 1.1], clamped by `timerDelay`
 */
function nextBeatDelay(nowMs, intervalMs) {
  const delay = intervalMs - (nowMs % intervalMs);
  return timerDelay(delay < intervalMs / 10 ? delay + intervalMs : delay);
}

module.exports = { nextBeatDelay, timerDelay };
