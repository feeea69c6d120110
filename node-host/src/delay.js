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

module.exports = { timerDelay };
