/**
 * The dashboard flags (cli/dashboard.ts): on by default for `train` and
 * `cluster` (127.0.0.1, a free port), off by default for `coordinator`,
 * `--no-dashboard` exclusive with the others, and bad values named.
 */
import { describe, expect, it } from 'vitest';
import { dashboardChoice, dashboardUrl } from '../../cli/dashboard.js';

describe('dashboard flags', () => {
  it('serves on 127.0.0.1 and a free port by default where asked to, and not elsewhere', () => {
    expect(dashboardChoice({}, true)).toEqual({ host: '127.0.0.1', port: 0 });
    expect(dashboardChoice({}, false)).toBeNull();
    expect(dashboardChoice({ 'dashboard-port': '8090' }, false)).toEqual({ host: '127.0.0.1', port: 8090 });
    expect(dashboardChoice({ 'dashboard-port': '0', 'dashboard-host': '0.0.0.0' }, false)).toEqual({ host: '0.0.0.0', port: 0 });
    expect(dashboardChoice({ 'no-dashboard': true }, true)).toBeNull();
  });

  it('refuses contradictions and bad values, naming the flag', () => {
    expect(() => dashboardChoice({ 'no-dashboard': true, 'dashboard-port': '1' }, true)).toThrow(/--no-dashboard with --dashboard-port/);
    expect(() => dashboardChoice({ 'dashboard-host': '10.0.0.1' }, false)).toThrow(/--dashboard-host needs --dashboard-port/);
    expect(() => dashboardChoice({ 'dashboard-port': '70000' }, true)).toThrow(/--dashboard-port must be an integer >= 0 and <= 65535, got "70000"/);
    expect(() => dashboardChoice({ 'dashboard-host': '' }, true)).toThrow(/--dashboard-host must name an interface/);
  });

  it('shows a wildcard host as loopback, and an IPv6 one in brackets', () => {
    expect(dashboardUrl({ host: '0.0.0.0', port: 80 })).toBe('http://127.0.0.1:80/');
    expect(dashboardUrl({ host: '::1', port: 81 })).toBe('http://[::1]:81/');
  });
});
