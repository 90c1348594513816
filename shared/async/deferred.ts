/**
 * A promise with its settle functions outside it: for results that arrive
 * through other calls (the last partial sum of a step, the last evaluation
 * chunk). Settles once; later calls are ignored. A rejection nobody awaits
 * is not an unhandled rejection: the owner observes it when it wants to.
 */
export class Deferred<T> {
  readonly promise: Promise<T>;
  private settledFlag = false;
  private resolveFn!: (v: T) => void;
  private rejectFn!: (err: unknown) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolveFn = resolve;
      this.rejectFn = reject;
    });
    this.promise.catch(() => undefined);
  }

  get settled(): boolean {
    return this.settledFlag;
  }

  resolve(value: T): void {
    if (this.settledFlag) return;
    this.settledFlag = true;
    this.resolveFn(value);
  }

  reject(err: unknown): void {
    if (this.settledFlag) return;
    this.settledFlag = true;
    this.rejectFn(err);
  }
}
