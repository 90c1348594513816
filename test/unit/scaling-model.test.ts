/**
 * The exchange-at-scale model (bench/scaling-model-lib.ts, docs/SCALING.md)
 * against values worked by hand, so the doc's formulas are checked apart
 * from the code that prints them. Round inputs: P = 110 M parameters, so
 * G = 440 MB (decimal), and 25 Gb/s = 3.125 GB/s per direction.
 */
import { describe, expect, it } from 'vitest';

import { estimate, flows, linkBytesPerSecond, presetParamCount, reducersNeeded, type LinkModel } from '../../bench/scaling-model-lib.js';

const P = 110e6;
const G = 440e6;
const link: LinkModel = { linkGbps: 25, latencyUs: 50, addGBps: 11 };

describe('scaling model', () => {
  it('turns 25 Gb/s into 3.125 GB/s', () => {
    expect(linkBytesPerSecond(25)).toBe(3.125e9);
  });

  it('puts N × G on one coordinator link: 8 × 440 MB = 3.52 GB, 1.1264 s at 25 Gb/s', () => {
    const e = estimate('coordinator', 8, P, link);
    expect(e.gradientBytes).toBe(G);
    expect(e.workerLinkBytes).toBe(G);
    expect(e.busiestLinkBytes).toBe(3.52e9);
    expect(e.transferMs).toBeCloseTo(1126.4, 6);
    // The coordinator adds 3.52 GB at 11 GB/s = 320 ms while the link takes 1126.4 ms: link-bound.
    expect(e.addMs).toBeCloseTo(320, 6);
    expect(e.latencyMs).toBeCloseTo(0.1, 9); // push then pull: 2 hops × 50 µs
    expect(e.exchangeMs).toBeCloseTo(1126.5, 6);
  });

  it('gives each of K reducers N × G/K and leaves a worker link at G', () => {
    const k4 = estimate('reducers', 8, P, link, 4); // 8 × 110 MB = 880 MB
    expect(k4.busiestLinkBytes).toBe(880e6);
    expect(k4.transferMs).toBeCloseTo(281.6, 6);
    const k8 = estimate('reducers', 8, P, link, 8); // K = N: reducer link = worker link = 440 MB
    expect(k8.busiestLinkBytes).toBe(G);
    expect(k8.transferMs).toBeCloseTo(140.8, 6);
    const k16 = estimate('reducers', 8, P, link, 16); // reducers lighter than workers: the worker link binds
    expect(k16.busiestLinkBytes).toBe(G);
    expect(k16.busiestAddBytes).toBe(220e6);
    expect(k16.messagesPerWorker).toBe(32);
  });

  it('makes one coordinator the same as one reducer', () => {
    expect(flows('reducers', 32, G, 1)).toEqual(flows('coordinator', 32, G));
  });

  it('moves 2 (N − 1)/N × G per ring link: 770 MB, 0.2464 s for N = 8', () => {
    const e = estimate('ring', 8, P, link);
    expect(e.busiestLinkBytes).toBeCloseTo(770e6, 3);
    expect(e.transferMs).toBeCloseTo(246.4, 6);
    expect(e.latencyMs).toBeCloseTo(0.7, 9); // 14 hops × 50 µs
    expect(e.reducers).toBeNull();
  });

  it('charges a 128-worker ring 254 hops of latency on 873.125 MB per link', () => {
    const e = estimate('ring', 128, P, link);
    expect(e.busiestLinkBytes).toBeCloseTo(873.125e6, 3);
    expect(e.transferMs).toBeCloseTo(279.4, 6);
    expect(e.hops).toBe(254);
    expect(e.latencyMs).toBeCloseTo(12.7, 9);
  });

  it('moves as many bytes with N reducers on the workers as the ring, in 2 hops', () => {
    const e = estimate('colocated', 8, P, link);
    expect(e.busiestLinkBytes).toBeCloseTo(770e6, 3);
    expect(e.hops).toBe(2);
    expect(e.reducers).toBe(8);
    expect(e.busiestAddBytes).toBe(G); // 8 partials of a 55 MB slice
  });

  it('lets a slow adder, not the link, set the exchange time', () => {
    // K = N = 8: 440 MB through the link in 140.8 ms, but summed at 2.2 GB/s in 200 ms.
    const e = estimate('reducers', 8, P, { ...link, addGBps: 2.2 }, 8);
    expect(e.addMs).toBeCloseTo(200, 6);
    expect(e.exchangeMs).toBeCloseTo(200.1, 6);
  });

  it('moves nothing with one worker in a ring', () => {
    expect(flows('ring', 1, G).busiestLinkBytes).toBe(0);
  });

  it('needs K = N for the links and N × B/A for the adds', () => {
    expect(reducersNeeded(32, 25, 12.5)).toEqual({ forLinks: 32, forAdds: 8 }); // 32 × 3.125/12.5
    expect(reducersNeeded(32, 25, 2.5)).toEqual({ forLinks: 32, forAdds: 40 }); // 32 × 3.125/2.5
    expect(reducersNeeded(2, 25, 100)).toEqual({ forLinks: 2, forAdds: 1 });
  });

  it('rejects a worker count below one', () => {
    expect(() => flows('coordinator', 0, G)).toThrow(/workers: expected an integer >= 1, got 0/);
  });

  it('counts BERT-base with pretraining heads as 110,106,428 parameters', () => {
    const H = 768;
    const I = 3072;
    const V = 30522;
    const linear = (o: number, i: number) => o * i + o;
    const layerNorm = 2 * H;
    const embeddings = V * H + 512 * H + 2 * H + layerNorm;
    const layer = 4 * linear(H, H) + layerNorm + linear(I, H) + linear(H, I) + layerNorm;
    const encoderAndPooler = embeddings + 12 * layer + linear(H, H);
    expect(encoderAndPooler).toBe(109_482_240); // Hugging Face BertModel, bert-base-uncased
    const heads = V + linear(H, H) + layerNorm + linear(2, H); // MLM bias (decoder tied), transform, NSP
    expect(presetParamCount('base')).toBe(encoderAndPooler + heads);
    expect(presetParamCount('base')).toBe(110_106_428);
  });
});
