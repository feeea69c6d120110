'use strict';

const assert = require('node:assert/strict');
const { describe, test } = require('node:test');
const { nextBeatDelay, timerDelay } = require('../src/delay');

describe('timerDelay', () => {
  test('clamps to what Node timers honour', () => {
    assert.equal(timerDelay(0), 1);
    assert.equal(timerDelay(250), 250);
    assert.equal(timerDelay(2 ** 40), 2 ** 31 - 1);
  });
});

describe('nextBeatDelay', () => {
  test('lands on the next multiple of the interval', () => {
    assert.equal(nextBeatDelay(10_200, 1000), 800);
    assert.equal(nextBeatDelay(10_000, 1000), 1000);
    // Hosts started at different moments beat at the same instants.
    for (const now of [5_100, 5_350, 5_499]) {
      assert.equal((now + nextBeatDelay(now, 1000)) % 1000, 0, `now ${now}`);
    }
  });

  test('never sends two beats back to back, nor waits much past an interval', () => {
    // A timer that fired just before its boundary waits for the next one instead.
    assert.equal(nextBeatDelay(10_999, 1000), 1001);
    assert.equal(nextBeatDelay(10_901, 1000), 1099);
    assert.equal(nextBeatDelay(10_899, 1000), 101);
    for (let now = 0; now < 3000; now += 7) {
      const delay = nextBeatDelay(now, 1000);
      assert.ok(delay >= 100 && delay <= 1100, `now ${now}: ${delay}`);
    }
  });

  test('stays within what Node timers honour', () => {
    const max = 2 ** 31 - 1;
    assert.equal(nextBeatDelay(max - 1, max), max);
  });
});
