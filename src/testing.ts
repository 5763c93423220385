// `foundation-cluster/testing`: what tests of Foundation (and of applications built on it) need to run
// clusters deterministically in one process: the in-memory network and a manual clock.

export { encodeFrame, FrameDecoder } from './transport/frame.js';
export { InMemoryNetwork } from './transport/memory.js';
export { flushIO, ManualClock, SystemClock } from './util/clock.js';
