/**
 * The runtime's back-off in tests unless a suite sets its own: short, so a
 * test can wait one out. Suites import it rather than copy the numbers, and a
 * test that must wait for a back-off awaits the engine's state
 * (FlowHarness.backoffOver), never a sleep tuned to these values.
 */
export const TEST_BACKOFF = Object.freeze({ backoffInitialMs: 50, backoffMaxMs: 400 });
