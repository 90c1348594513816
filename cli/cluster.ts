/** `bertfleet cluster`: not yet available in this build. */
export async function run(): Promise<number> {
  process.stderr.write('bertfleet cluster: the distributed runtime is not in this build yet; use `bertfleet train`\n');
  return 2;
}
