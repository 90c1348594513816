/**
 * Enough of a Dockerfile and .dockerignore reader for offline image checks:
 * stages and their instructions (continuation lines joined, comments
 * dropped), COPY sources and flags, and .dockerignore matching as Docker's
 * builder does it (Go filepath.Match patterns plus `**`, relative to the
 * context root; a path is excluded when it or a parent folder matches; `!`
 * re-includes; the last matching line wins).
 */

export interface Instruction {
  keyword: string;
  /** The arguments, continuation lines joined. */
  args: string;
}

export interface Stage {
  /** The image or earlier stage it starts FROM. */
  from: string;
  name?: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line)) continue; // comments (and parser directives), also inside a continuation
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1)} `;
      continue;
    }
    const whole = (pending + line).trim();
    pending = '';
    if (whole !== '') logical.push(whole);
  }
  const stages: Stage[] = [];
  for (const l of logical) {
    const m = /^(\S+)\s*(.*)$/s.exec(l)!;
    const keyword = m[1]!.toUpperCase();
    const args = m[2]!.replace(/\s+/g, ' ').trim();
    if (keyword === 'FROM') {
      const words = args.split(' ').filter((w) => !w.startsWith('--'));
      const as = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ from: words[0]!, ...(as >= 0 && { name: words[as + 1]! }), instructions: [] });
    } else if (keyword !== 'ARG' || stages.length > 0) {
      if (stages.length === 0) throw new Error(`Dockerfile: ${keyword} before the first FROM`);
      stages[stages.length - 1]!.instructions.push({ keyword, args });
    }
  }
  return stages;
}

export interface Copy {
  /** The stage or image of --from; undefined: the build context. */
  from?: string;
  sources: string[];
  dest: string;
}

/** The sources and destination of a COPY (shell or JSON form), its flags taken out. */
export function parseCopy(args: string): Copy {
  const words: string[] = [];
  let rest = args;
  let from: string | undefined;
  while (rest.startsWith('--')) {
    const m = /^--(\S+?)(?:=(\S*))?(?:\s+|$)/.exec(rest)!;
    if (m[1] === 'from') from = m[2];
    rest = rest.slice(m[0].length);
  }
  if (rest.startsWith('[')) words.push(...(JSON.parse(rest) as string[]));
  else words.push(...rest.split(' ').filter((w) => w !== ''));
  if (words.length < 2) throw new Error(`COPY needs a source and a destination: ${args}`);
  return { ...(from !== undefined && { from }), sources: words.slice(0, -1), dest: words[words.length - 1]! };
}

/** The stage's WORKDIR after all its WORKDIR lines (absolute), inherited from an earlier stage it starts FROM. */
export function workdirOf(stages: readonly Stage[], stage: Stage): string {
  const parent = stages.find((s) => s.name !== undefined && s.name === stage.from);
  let dir = parent !== undefined ? workdirOf(stages, parent) : '/';
  for (const i of stage.instructions) {
    if (i.keyword === 'WORKDIR') dir = i.args.startsWith('/') ? i.args : `${dir.replace(/\/$/, '')}/${i.args}`;
  }
  return dir;
}

/** The last USER of a stage (or of the stage it starts FROM); undefined: the base image's. */
export function userOf(stages: readonly Stage[], stage: Stage): string | undefined {
  const own = stage.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
  if (own !== undefined) return own;
  const parent = stages.find((s) => s.name !== undefined && s.name === stage.from);
  return parent !== undefined ? userOf(stages, parent) : undefined;
}

/** An image reference's parts: `name[:tag][@sha256:digest]`. */
export function imageRef(ref: string): { name: string; tag?: string; digest?: string } {
  const [nameTag, digest] = ref.split('@') as [string, string | undefined];
  const slash = nameTag.lastIndexOf('/');
  const colon = nameTag.indexOf(':', slash + 1);
  return {
    name: colon < 0 ? nameTag : nameTag.slice(0, colon),
    ...(colon >= 0 && { tag: nameTag.slice(colon + 1) }),
    ...(digest !== undefined && { digest }),
  };
}

function patternRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      const slash = pattern[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A predicate: whether .dockerignore excludes `path` (relative to the context root, `/`-separated). */
export function dockerignoreMatcher(text: string): (path: string) => boolean {
  const rules = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const negate = l.startsWith('!');
    const pattern = (negate ? l.slice(1) : l).trim().replace(/^\/+/, '').replace(/\/+$/, '');
    return { negate, re: patternRegex(pattern) };
  });
  return (path: string) => {
    const parts = path.replace(/^\.?\/+/, '').split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) excluded = !r.negate;
    return excluded;
  };
}
