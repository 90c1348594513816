/**
 * How K reducers share the flat gradient of P floats: K contiguous slices,
 * slice j = [floor(j P / K), floor((j + 1) P / K)). The tree sum is
 * elementwise, so reducing each slice on its own gives the same bits as one
 * reducer over the whole vector, whatever K is. A pure function: workers and
 * the coordinator compute the same slices from P and K.
 */
export interface Slice {
  lo: number;
  hi: number;
}

export function sliceBounds(paramCount: number, reducers: number): Slice[] {
  if (!(Number.isInteger(reducers) && reducers >= 1)) throw new RangeError(`reducers must be an integer >= 1, got ${reducers}`);
  if (!(Number.isInteger(paramCount) && paramCount >= reducers)) throw new RangeError(`cannot cut ${paramCount} floats into ${reducers} slices`);
  return Array.from({ length: reducers }, (_, j) => ({ lo: Math.floor((j * paramCount) / reducers), hi: Math.floor(((j + 1) * paramCount) / reducers) }));
}
