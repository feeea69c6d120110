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
 * instead of once per host. Never less than half an interval, so a timer that fires a little
 * before its boundary does not send two beats back to back.
 *
 * @param {number} nowMs wall-clock time (`Date.now()`)
 * @param {number} intervalMs the heartbeat interval, already clamped by `timerDelay`
 * @returns {number} milliseconds, in [intervalMs / 2, intervalMs * 1.5]
 */
function nextBeatDelay(nowMs, intervalMs) {
  const delay = intervalMs - (nowMs % intervalMs);
  return delay < intervalMs / 2 ? delay + intervalMs : delay;
}

module.exports = { nextBeatDelay, timerDelay };
