/** A bad setting stops the node at start with a message that names it (PROTOCOL.md §6). */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, loadConfig } from '../src/config.js';

describe('settings', () => {
  it.each([
    [{ SB_MAX_GROUP: 'x' }, 'SB_MAX_GROUP'],
    [{ SB_PORT: '70000' }, 'SB_PORT'],
    [{ SB_RATE: '-1' }, 'SB_RATE'],
    [{ SB_SQLITE_SYNC: 'OFF' }, 'SB_SQLITE_SYNC'],
    [{ SB_CQL_CONSISTENCY: 'SOME' }, 'SB_CQL_CONSISTENCY'],
    [{ SB_CQL_CONTACT_POINTS: 'bad host!' }, 'SB_CQL_CONTACT_POINTS'],
    [{ SB_NATS_URL: 'http://x' }, 'SB_NATS_URL'],
    [{ SB_JWT_SECRET: 'short' }, 'SB_JWT_SECRET'],
    [{ SB_HEARTBEAT_MS: '1000', SB_FAILURE_MS: '1500' }, 'SB_FAILURE_MS'],
  ])('%o is refused naming %s', (env, name) => {
    expect(() => loadConfig(['--dev'], env)).toThrow(ConfigError);
    expect(() => loadConfig(['--dev'], env)).toThrow(new RegExp(`^${name}:`));
  });

  it('flags win over the environment, and the secret is required without --dev', () => {
    expect(loadConfig(['--dev', '--max-group', '50'], { SB_MAX_GROUP: '10' }).maxGroup).toBe(50);
    expect(() => loadConfig([], {})).toThrow(/^SB_JWT_SECRET:/);
    expect(buildConfig({ dev: true }).maxGroup).toBe(200);
  });

  it('node dist/node.js exits 2 with a message naming the setting; --help exits 0', () => {
    const bad = spawnSync(process.execPath, ['dist/node.js', '--dev', '--port', '0'], { env: { ...process.env, SB_MAX_BODY: 'lots' }, encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/SB_MAX_BODY: must be an integer/);
    const help = spawnSync(process.execPath, ['dist/node.js', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/SB_MAX_GROUP/);
  });
});
