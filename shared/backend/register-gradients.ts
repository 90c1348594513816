/**
 * Registers tfjs's op gradients. tfjs-core's CommonJS build (what Node loads)
 * registers none, and its ESM sources cannot be imported by Node directly; the
 * union package `@tensorflow/tfjs` registers them all into the global registry
 * on import, as it does for tfjs-node users. Import this module for the side
 * effect; nothing else needs the union package.
 */
import '@tensorflow/tfjs';
