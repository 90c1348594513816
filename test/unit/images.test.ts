/**
 * The images (Dockerfile: CPU, Dockerfile.gpu: GPU), checked offline since
 * no container engine runs here: every base image pinned by digest, every COPY source present and not kept out of the
 * context by .dockerignore, .dockerignore keeping local state and secrets
 * out, production packages only (`npm ci --omit=dev`), a non-root numeric
 * USER equal to the pods' runAsUser, the ENTRYPOINT a file the image holds,
 * and every module the image runs finding what it imports inside the image
 * (no module, asset or dev dependency left behind). Both images share one
 * layout.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dockerignoreMatcher, imageRef, parseCopy, parseDockerfile, userOf, workdirOf, type Stage } from '../helpers/dockerfile.js';
import { filesUnder, holds, imageLayout, isModule, moduleRefs, readRepoFile, resolveRelative } from '../helpers/image-contents.js';
import { renderOverlay, REPO_ROOT } from '../helpers/kubectl.js';
import { workloads } from '../helpers/k8s-objects.js';

const DOCKERFILES = ['Dockerfile', 'Dockerfile.gpu'] as const;
/** Imports the image may lack, and why. */
const NOT_IN_IMAGE: Record<string, string> = {
  'bench/main.ts': '`bertfleet bench` (loaded only by that command) needs PyTorch and a checkout, not a pod',
};

const excluded = dockerignoreMatcher(readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8'));
const parsed = (file: string): Stage[] => parseDockerfile(readFileSync(join(REPO_ROOT, file), 'utf8'));
const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;

/** What the modules of an image built from `stages` load and the image lacks. */
function missingFromImage(stages: readonly Stage[]): string[] {
  const layout = imageLayout(REPO_ROOT, stages, excluded);
  const production = new Set([...Object.keys(pkg['dependencies'] ?? {}), ...Object.keys(pkg['optionalDependencies'] ?? {})]);
  const missing: string[] = [];
  for (const f of [...layout.fromContext].filter(isModule)) {
    const refs = moduleRefs(readRepoFile(REPO_ROOT, f));
    for (const r of refs.relative) {
      const target = resolveRelative(REPO_ROOT, f, r.spec);
      if (!holds(layout, target) && !(r.dynamic && NOT_IN_IMAGE[target] !== undefined)) missing.push(`${f} imports ${r.spec} (${target})`);
    }
    for (const a of refs.assets) {
      const target = posix.normalize(posix.join(posix.dirname(f), a));
      if (!holds(layout, target)) missing.push(`${f} reads ${a} (${target})`);
    }
    for (const p of refs.packages) if (!production.has(p)) missing.push(`${f} loads ${p}, not a production dependency`);
  }
  return missing;
}

describe('.dockerignore', () => {
  it('keeps local state and secrets out of the build context', () => {
    const local = [
      'node_modules/tsx/package.json', 'web/node_modules/x/index.js', 'native/build/Release/wasm_blas.node', '.git/HEAD',
      'runs/2026-01-01/metrics.json', '.cache/bertfleet/pretrain.bin', '.tools/kubectl', 'test-artifacts/report.html',
      'pki/ca.key', 'pki/ca.pem', 'deploy/worker-0.key', 'certs/coordinator.pem', 'pki/nats-worker.creds.json', '.env', 'k8s/.env.local', 'npm-debug.log',
    ];
    expect(local.filter((p) => !excluded(p))).toEqual([]);
  });

  it('keeps in what the images are built from', () => {
    const needed = ['package.json', 'package-lock.json', 'tsconfig.json', 'native/src/addon.c', 'native/binding.gyp', 'bin/bertfleet', 'cli/main.ts', 'shared/config/run-config.ts', 'proto/bertfleet.proto', 'web/page.html'];
    expect(needed.filter((p) => excluded(p))).toEqual([]);
  });

  it('matches as Docker does: root-relative names, ** across folders, a folder\'s contents with it, ! re-including', () => {
    const m = dockerignoreMatcher('runs\n**/*.log\ndocs/*.md\n!docs/keep.md\n');
    expect([m('runs'), m('runs/a/b.json'), m('x/runs'), m('a.log'), m('a/b/c.log'), m('docs/x.md'), m('docs/keep.md'), m('docs/sub/x.md')])
      .toEqual([true, true, false, true, true, true, false, false]);
  });
});

for (const file of DOCKERFILES) {
  describe(file, () => {
    const stages = parsed(file);
    const names = new Set(stages.map((s) => s.name).filter((n) => n !== undefined));

    it('pins every base image by digest ', () => {
      const bases = [...stages.map((s) => s.from), ...stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args).from))]
        .filter((f): f is string => f !== undefined && !names.has(f));
      expect(bases.length).toBeGreaterThan(0);
      const unpinned = bases.filter((b) => !/^sha256:[0-9a-f]{64}$/.test(imageRef(b).digest ?? ''));
      expect(unpinned, 'unpinned base images').toEqual([]);
      for (const b of bases) expect(imageRef(b).tag, `${b}: keep the tag beside the digest, for readers`).toBeDefined();
    });

    it('copies only sources that exist and that .dockerignore lets into the context', () => {
      for (const s of stages) {
        for (const i of s.instructions.filter((x) => x.keyword === 'COPY')) {
          const copy = parseCopy(i.args);
          if (copy.from !== undefined) {
            // An earlier stage, or an image (pinned: the test above).
            expect(names.has(copy.from) || /[:@]/.test(copy.from), `COPY --from=${copy.from}: no such stage`).toBe(true);
            continue;
          }
          for (const src of copy.sources) {
            expect(existsSync(join(REPO_ROOT, src)), `COPY ${src}: no such file in the repository`).toBe(true);
            expect(excluded(src), `COPY ${src}: excluded by .dockerignore`).toBe(false);
            const lost = filesUnder(REPO_ROOT, src).filter((f) => excluded(f) && (isModule(f) || /\.(proto|html|json|c|h|gyp)$/.test(f)));
            expect(lost, `COPY ${src}: files .dockerignore keeps out`).toEqual([]);
          }
        }
      }
    });

    it('installs production packages only, with npm ci', () => {
      const runs = stages.flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args));
      const npmInstalls = runs.filter((r) => /\bnpm (ci|install|i)\b/.test(r));
      expect(npmInstalls.length).toBeGreaterThan(0);
      for (const r of npmInstalls) {
        expect(r, 'npm ci, not npm install (the lock file decides)').not.toMatch(/\bnpm (install|i)\b/);
        expect(r).toMatch(/\bnpm ci\b[^&]*--omit=dev/);
      }
    });

    it('runs as a numeric non-root user, the pods\' runAsUser', async () => {
      const user = userOf(stages, stages.at(-1)!);
      expect(user, 'USER of the runtime stage').toMatch(/^\d+(:\d+)?$/);
      const [uid, gid] = user!.split(':').map(Number);
      expect(uid).not.toBe(0);
      const pods = workloads(await renderOverlay(file === 'Dockerfile' ? 'k8s/overlays/cpu' : 'k8s/overlays/gpu'))
        .filter((w) => w.pod.containers.some((c: { image: string }) => /^bertfleet/.test(c.image)));
      for (const w of pods) expect([w.pod.securityContext.runAsUser, w.pod.securityContext.runAsGroup ?? gid], w.name).toEqual([uid, gid ?? uid]);
    });

    it('starts bin/bertfleet, a file the image holds, as its ENTRYPOINT', () => {
      const final = stages.at(-1)!;
      const entry = JSON.parse(final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)!.args) as string[];
      const layout = imageLayout(REPO_ROOT, stages, excluded);
      const inRepo = posix.relative(workdirOf(stages, final), entry[0]!);
      expect(inRepo).toBe('bin/bertfleet');
      expect(holds(layout, inRepo)).toBe(true);
      accessSync(join(REPO_ROOT, inRepo), constants.X_OK);
    });

    it('holds every module, asset and production package its modules load', () => {
      expect(missingFromImage(stages)).toEqual([]);
      expect(imageLayout(REPO_ROOT, stages, excluded).fromContext.size).toBeGreaterThan(50);
    });
  });
}

describe('the CPU and GPU images', () => {
  it('share one layout: WORKDIR, USER, ENTRYPOINT and what they copy from the repository', () => {
    const summary = (file: string) => {
      const stages = parsed(file);
      const final = stages.at(-1)!;
      return {
        workdir: workdirOf(stages, final),
        user: userOf(stages, final),
        entrypoint: final.instructions.filter((i) => i.keyword === 'ENTRYPOINT').map((i) => i.args),
        copies: final.instructions.filter((i) => i.keyword === 'COPY').map((i) => i.args),
      };
    };
    expect(summary('Dockerfile.gpu')).toEqual(summary('Dockerfile'));
  });

  it('carry tfjs-node-gpu only in the GPU image, and tfjs-node in neither', () => {
    const runs = (file: string) => parsed(file).flatMap((s) => s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args)).join('\n');
    expect(runs('Dockerfile')).toMatch(/rm -rf node_modules\/@tensorflow\/tfjs-node node_modules\/@tensorflow\/tfjs-node-gpu/);
    expect(runs('Dockerfile.gpu')).toMatch(/rm -rf node_modules\/@tensorflow\/tfjs-node &&/);
    expect(runs('Dockerfile.gpu')).toMatch(/npm rebuild @tensorflow\/tfjs-node-gpu/);
  });
});

describe('the image checks catch', () => {
  it('a folder the image needs but does not copy, and an asset read beside the sources', () => {
    const stages = parsed('Dockerfile');
    const final = stages.at(-1)!;
    const without = [...stages.slice(0, -1), { ...final, instructions: final.instructions.filter((i) => !/^(proto|coordinator) /.test(i.args)) }];
    const missing = missingFromImage(without).join('\n');
    expect(missing).toMatch(/shared\/wire\/grpc-common\.ts reads \.\.\/\.\.\/proto\/bertfleet\.proto/);
    expect(missing).toMatch(/cli\/\S+ imports \.\.\/coordinator\//);
  });

  it('a dev dependency loaded at run time, but not a type-only import', () => {
    const refs = moduleRefs("import { parse } from 'yaml';\nimport type { Mock } from 'vitest';\nimport { type Foo, type Bar } from 'kubernetes-models';\nimport { readFileSync } from 'node:fs';\nconst m = await import('@scope/pkg/sub.js');\n");
    expect(refs.packages).toEqual(['yaml', '@scope/pkg']);
  });
});
