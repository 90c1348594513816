/**
 * The terminal progress bars, drawn into a fake terminal (a Writable with
 * isTTY set): each frame names its stage and counts; on a stream that is not
 * a terminal, or when progress is turned off, nothing at all is written.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createRunProgress, RateWindow } from '../../cli/progress.js';
import { createProgress } from '../../shared/data/progress.js';

class FakeTerminal extends Writable {
  text = '';
  columns = 160;

  constructor(readonly isTTY: boolean) {
    super();
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.text += chunk.toString();
    done();
  }

  /** What was drawn, without the cursor and line escape codes. */
  get plain(): string {
    // eslint-disable-next-line no-control-regex
    return this.text.replace(/\x1B(?:\[[0-9;?]*[A-Za-z]|[78])/g, '');
  }
}

describe('the run progress on a terminal', () => {
  it('draws a training bar with steps, loss and seq/s, then an evaluation bar with chunks', () => {
    const tty = new FakeTerminal(true);
    const bar = createRunProgress(true, tty);
    bar.step('pretrain', 3, 10, 2.5, { sequences: 12, durationMs: 100 });
    bar.step('pretrain', 4, 10, 2.25, { sequences: 12, durationMs: 300 });
    bar.count('evaluate test', 0, 5, 'chunks');
    bar.count('evaluate test', 2, 5, 'chunks');
    bar.stop();
    expect(tty.plain).toMatch(/pretrain +\[[^\]]*\] 3\/10 steps \| loss 2\.500 \| 120\.0 seq\/s \| eta /);
    // The last frame of the phase: 24 sequences in 0.4 s.
    expect(tty.plain).toMatch(/pretrain +\[[^\]]*\] 4\/10 steps \| loss 2\.250 \| 60\.0 seq\/s/);
    expect(tty.plain).toMatch(/evaluate test +\[[^\]]*\] 0\/5 chunks/);
    expect(tty.plain).toMatch(/evaluate test +\[[^\]]*\] 2\/5 chunks/);
  });

  it('starts a new bar for each phase', () => {
    const tty = new FakeTerminal(true);
    const bar = createRunProgress(true, tty);
    bar.step('pretrain', 6, 6, 1, { sequences: 12, durationMs: 10 });
    bar.step('finetune', 1, 6, 0.7, { sequences: 12, durationMs: 10 });
    bar.stop();
    expect(tty.plain).toMatch(/pretrain +\[[^\]]*\] 6\/6 steps/);
    expect(tty.plain).toMatch(/finetune +\[[^\]]*\] 1\/6 steps \| loss 0\.700/);
  });

  it('writes nothing when stderr is not a terminal, or when progress is off', () => {
    for (const [wanted, isTTY] of [[true, false], [false, true]] as const) {
      const stream = new FakeTerminal(isTTY);
      const bar = createRunProgress(wanted, stream);
      bar.step('pretrain', 1, 2, 1, { sequences: 1, durationMs: 1 });
      bar.count('evaluate test', 1, 2, 'chunks');
      bar.stop();
      expect(stream.text).toBe('');
    }
  });

  it('averages seq/s over the last steps only', () => {
    const w = new RateWindow(2);
    w.add({ sequences: 100, durationMs: 100 });
    w.add({ sequences: 10, durationMs: 1000 });
    w.add({ sequences: 10, durationMs: 1000 });
    expect(w.perSecond()).toBe(10);
  });
});

describe('the data preparation progress on a terminal', () => {
  it('draws each stage with its name and counts', () => {
    const tty = new FakeTerminal(true);
    const p = createProgress(true, tty);
    p.stage('data train: tokenize', 8, 'documents');
    p.update(4);
    p.stage('data train: shards', 100, 'examples');
    p.update(100);
    p.stop();
    expect(tty.plain).toMatch(/data train: tokenize +\[[^\]]*\] 0\/8 documents/);
    expect(tty.plain).toMatch(/data train: tokenize +\[[^\]]*\] 4\/8 documents/);
    expect(tty.plain).toMatch(/data train: shards +\[[^\]]*\] 100\/100 examples/);
  });

  it('writes nothing on a stream that is not a terminal', () => {
    const stream = new FakeTerminal(false);
    const p = createProgress(true, stream);
    p.stage('data train: tokenize', 8, 'documents');
    p.update(8);
    p.stop();
    expect(stream.text).toBe('');
  });
});
