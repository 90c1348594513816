/**
 * Gradients of a scalar with respect to `xs`, like `tf.grads(f)(xs)` — the
 * same tape, the same gradient functions called in the same order, so the
 * same bytes — except that memory is freed as the walk goes: once a node's
 * input gradients are computed, its output gradients and the tensors it saved
 * for backward are disposed. tfjs-core 4.22's `engine.gradients` keeps every
 * intermediate gradient and every saved tensor until the whole backward pass
 * ends, so its peak is the forward activations plus all their gradients;
 * here the peak is about the forward activations alone. BERT-base at
 * micro-batch 8 × 128 tokens: backward peak 6.4 GB (over the 4 GiB wasm heap)
 * instead of 2.4 GB above the parameters.
 *
 * NON-PUBLIC INTERNALS: the engine's tape (`state.activeTape`,
 * `state.gradientDepth`, `startTape`/`endTape`/`scopedRun`, tape nodes'
 * `inputs`/`outputs`/`gradient`/`saved`), checked against tfjs-core 4.22.0;
 * `tapeInternals` throws BackendError when they are not as expected.
 * Knows tfjs-core's engine; knows nothing of models or backends.
 */
import * as tf from '@tensorflow/tfjs-core';
import { BackendError } from '../errors.js';

interface TapeNode {
  id: number;
  inputs: Record<string, tf.Tensor>;
  outputs: tf.Tensor[];
  gradient?: (dys: Array<tf.Tensor | null>) => Record<string, () => tf.Tensor>;
  saved?: tf.Tensor[];
}

interface EngineInternals {
  state: { activeTape: TapeNode[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  scopedRun<T>(start: () => void, end: () => void, f: () => T): T;
  tidy<T extends tf.TensorContainer>(nameOrFn: string | (() => T), fn?: () => T): T;
}

function tapeInternals(): EngineInternals {
  const e = tf.engine() as unknown as Partial<EngineInternals>;
  for (const fn of ['startTape', 'endTape', 'scopedRun', 'tidy'] as const) {
    if (typeof e[fn] !== 'function') {
      throw new BackendError(`backprop: tfjs-core engine internals changed (written for 4.22.0, core is ${tf.version_core}): expected engine.${fn}(), got ${typeof e[fn]}`);
    }
  }
  if (typeof e.state?.gradientDepth !== 'number') {
    throw new BackendError(`backprop: tfjs-core engine internals changed (core ${tf.version_core}): expected engine.state.gradientDepth, got ${typeof e.state?.gradientDepth}`);
  }
  return e as EngineInternals;
}

/** The nodes on a path from some x to y, inputs pruned to those reached from xs (as tfjs-core's tape.ts). */
function nodesXToY(tape: readonly TapeNode[], xs: readonly tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      node.outputs.forEach((o) => fromX.add(o.id));
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((o) => toY.has(o.id))) {
      for (const t of Object.values(node.inputs)) toY.add(t.id);
      nodesToY.add(node.id);
    }
  }
  return tape
    .filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id))
    .map((n) => ({ ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))) }));
}

function disposeSaved(node: TapeNode): void {
  for (const t of node.saved ?? []) t.dispose();
}

/** One node's gradient into `acc` (by input tensor id), then its outputs' gradients and saved tensors freed. */
function backpropNode(e: EngineInternals, node: TapeNode, acc: Map<number, tf.Tensor>): void {
  if (node.gradient == null) throw new BackendError(`backprop: expected a gradient function for a tape node, got none (node ${node.id})`);
  const dys = node.outputs.map((o) => acc.get(o.id) ?? null);
  const inputGradients = node.gradient(dys);
  for (const [name, x] of Object.entries(node.inputs)) {
    const make = inputGradients[name];
    if (make === undefined) throw new BackendError(`backprop: expected a gradient for input ${name}, got ${Object.keys(inputGradients).join(', ')}`);
    let dx = e.tidy(make);
    // A gradient function may hand back a dy or a saved tensor as is: those are freed below.
    if (dys.includes(dx) || node.saved?.includes(dx)) dx = tf.clone(dx);
    if (dx.dtype !== 'float32') throw new BackendError(`backprop: expected a float32 gradient for input ${name}, got ${dx.dtype}`);
    const cur = acc.get(x.id);
    if (cur === undefined) {
      acc.set(x.id, dx);
    } else {
      acc.set(x.id, tf.add(cur, dx)); // the order of tfjs-core's backpropagateGradients
      cur.dispose();
      dx.dispose();
    }
  }
  for (const o of node.outputs) {
    acc.get(o.id)?.dispose();
    acc.delete(o.id);
  }
  disposeSaved(node);
}

/** The gradients of `f()` (a scalar) with respect to each of `xs`; throws if one has none, as tf.grads. */
export function gradsFreeingAsWeGo(f: () => tf.Tensor, xs: readonly tf.Tensor[]): tf.Tensor[] {
  const e = tapeInternals();
  if (e.state.gradientDepth !== 0) throw new BackendError(`backprop: expected no enclosing gradient tape, got depth ${e.state.gradientDepth}`);
  const y = e.scopedRun(() => e.startTape(), () => e.endTape(), () => e.tidy('forward', f));
  const tape = e.state.activeTape ?? [];
  e.state.activeTape = null;
  const path = nodesXToY(tape, xs, y);
  const onPath = new Set(path.map((n) => n.id));
  for (const node of tape) if (!onPath.has(node.id)) disposeSaved(node);
  const grads = e.tidy('backward', () => {
    const acc = new Map<number, tf.Tensor>([[y.id, tf.onesLike(y)]]);
    for (let i = path.length - 1; i >= 0; i--) backpropNode(e, path[i]!, acc);
    return xs.map((x, i) => {
      const g = acc.get(x.id);
      if (g === undefined) throw new BackendError(`backprop: expected a gradient for every x, got none for x #${i} (shape [${x.shape}])`);
      return g;
    });
  });
  y.dispose();
  return grads;
}

/** `tf.grads`' signature: `grads(f)(xs)`. */
export function grads(f: (...xs: tf.Tensor[]) => tf.Tensor): (xs: tf.Tensor[]) => tf.Tensor[] {
  return (xs) => gradsFreeingAsWeGo(() => f(...xs), xs);
}
