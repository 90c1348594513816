/**
 * Where a process's TLS files and NATS credentials come from: flags, then
 * environment variables, then the `tls` block of its --config file (paths
 * relative to the file), with `--insecure` a flag that wins over the block.
 * The block is the process's, never part of the run config.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { configFileSecurity, givenSettings } from '../../cli/run-flags.js';
import { securityChoice } from '../../cli/security-flags.js';
import { ConfigError } from '../../shared/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'bertfleet-security-flags-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configWith(block: unknown): string {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ seed: 3, tls: block }));
  return file;
}

const block = { ca: 'ca.pem', cert: 'coordinator.pem', key: 'keys/coordinator.key', natsCreds: '/abs/nats.creds.json' };

describe('the tls block of --config', () => {
  it('resolves relative paths against the file and keeps absolute ones', () => {
    expect(configFileSecurity({ config: configWith(block) })).toEqual({
      tlsFiles: { ca: join(dir, 'ca.pem'), cert: join(dir, 'coordinator.pem'), key: join(dir, 'keys/coordinator.key') },
      natsCredentialsFile: '/abs/nats.creds.json',
    });
  });

  it('is not part of the run settings', () => {
    const { given } = givenSettings({ config: configWith(block) });
    expect(given).not.toHaveProperty('tls');
    expect(given).toMatchObject({ seed: 3 });
  });

  it('refuses an incomplete or unknown block, naming the key and the expected shape', () => {
    const missing = () => configFileSecurity({ config: configWith({ ca: 'ca.pem', cert: 'c.pem' }) });
    expect(missing).toThrow(ConfigError);
    expect(missing).toThrow(/tls\.key: .*expected \{"ca": FILE, "cert": FILE, "key": FILE, "natsCreds"\?: FILE\}/);
    expect(() => configFileSecurity({ config: configWith({ ...block, password: 'x' }) })).toThrow(/tls: .*password/);
    expect(() => configFileSecurity({ config: configWith('ca.pem') })).toThrow(/tls: /);
  });

  it('is absent without --config or without a block', () => {
    expect(configFileSecurity({})).toBeUndefined();
    const file = join(dir, 'plain.json');
    writeFileSync(file, '{"seed": 1}');
    expect(configFileSecurity({ config: file })).toBeUndefined();
  });
});

describe('precedence: flags, then environment, then the config file', () => {
  const fromConfig = { tlsFiles: { ca: '/cfg/ca.pem', cert: '/cfg/c.pem', key: '/cfg/c.key' }, natsCredentialsFile: '/cfg/nats.json' };
  const env = { BERTFLEET_TLS_CA: '/env/ca.pem', BERTFLEET_TLS_CERT: '/env/c.pem', BERTFLEET_TLS_KEY: '/env/c.key', BERTFLEET_NATS_CREDS: '/env/nats.json' };

  it('takes the config file when nothing else names the files', () => {
    expect(securityChoice({}, {}, 'coordinator', { needsNats: true, fromConfig })).toEqual({ ...fromConfig, insecure: false });
  });

  it('lets environment variables win over the config file', () => {
    expect(securityChoice({}, env, 'coordinator', { needsNats: true, fromConfig })).toEqual({
      tlsFiles: { ca: '/env/ca.pem', cert: '/env/c.pem', key: '/env/c.key' }, natsCredentialsFile: '/env/nats.json', insecure: false,
    });
  });

  it('lets flags win over both', () => {
    const flags = { 'tls-ca': '/f/ca.pem', 'tls-cert': '/f/c.pem', 'tls-key': '/f/c.key', 'nats-creds': '/f/nats.json' };
    expect(securityChoice(flags, env, 'coordinator', { needsNats: true, fromConfig })).toEqual({
      tlsFiles: { ca: '/f/ca.pem', cert: '/f/c.pem', key: '/f/c.key' }, natsCredentialsFile: '/f/nats.json', insecure: false,
    });
  });

  it('takes NATS credentials from the file when only the TLS files are flags', () => {
    const flags = { 'tls-ca': '/f/ca.pem', 'tls-cert': '/f/c.pem', 'tls-key': '/f/c.key' };
    expect(securityChoice(flags, {}, 'coordinator', { needsNats: true, fromConfig }).natsCredentialsFile).toBe('/cfg/nats.json');
  });

  it('lets --insecure win over the config file, but not sit beside TLS flags', () => {
    expect(securityChoice({ insecure: true }, {}, 'coordinator', { needsNats: true, fromConfig })).toEqual({ tlsFiles: null, insecure: true });
    expect(() => securityChoice({ insecure: true }, env, 'coordinator', { needsNats: true, fromConfig })).toThrow(/--insecure and TLS files/);
  });

  it('says every place the files can come from when none is given', () => {
    expect(() => securityChoice({}, {}, 'coordinator', { needsNats: true, readsConfig: true })).toThrow(/--tls-ca FILE.*BERTFLEET_TLS_CA.*"tls" block in --config.*--insecure/s);
    // A command without --config (worker, reducer) does not mention it.
    expect(() => securityChoice({}, {}, 'worker', { needsNats: true })).toThrow(/BERTFLEET_TLS_KEY\) and --nats-creds/);
  });
});
