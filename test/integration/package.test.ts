import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * What `npm pack` puts in the tarball a palette user installs: the nodes,
 * their editor files and catalogs, the compiled code (the sandbox with its
 * command), the examples; no source maps (the TypeScript is not shipped), no
 * tests, nothing twice. `npm pack --dry-run` lists it offline, without
 * running prepack (the build is there already).
 */
const root = path.resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  scripts: Record<string, string>;
  'node-red': { version: string; nodes: Record<string, string> };
};

describe('the packed tarball', function () {
  this.timeout(60_000);
  let files: string[];

  before(() => {
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--offline'], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    files = (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  });

  it('holds every node: entry, editor file, help and messages in English and German', () => {
    for (const [type, entry] of Object.entries(pkg['node-red'].nodes)) {
      assert.ok(files.includes(entry), entry);
      assert.ok(files.includes(`nodes/${type}.html`), type);
      for (const lang of ['en-US', 'de'])
        for (const ext of ['html', 'json']) assert.ok(files.includes(`nodes/locales/${lang}/${type}.${ext}`), `${lang}/${type}.${ext}`);
      // The compiled module its entry loads: its own, or the config node registered from its platform declaration alone.
      const required = /require\('\.\/(.+?)'\)/.exec(fs.readFileSync(path.join(root, entry), 'utf8'))?.[1];
      assert.ok(required && files.includes(path.posix.join(path.posix.dirname(entry), required)), `the compiled module of ${type}`);
    }
    assert.ok(files.some((f) => f.startsWith('examples/') && f.endsWith('.json')));
  });

  it('the commands (bin: the sandbox, the agent store tool) are in it and start with a shebang', () => {
    assert.deepEqual(Object.keys(pkg.bin), ['iiot-auth-sandbox', 'iiot-auth-agents']);
    for (const target of Object.values(pkg.bin)) {
      assert.ok(files.includes(target), target);
      assert.match(fs.readFileSync(path.join(root, target), 'utf8'), /^#!\/usr\/bin\/env node\n/);
    }
  });

  it('ships no source maps, no TypeScript, no tests, and the icon once', () => {
    assert.deepEqual(
      files.filter((f) => f.endsWith('.map')),
      [],
      'source maps would point at src/*.ts, which is not shipped',
    );
    assert.deepEqual(
      files.filter((f) => f.endsWith('.ts')),
      [],
    );
    assert.deepEqual(
      files.filter((f) => /(^|\/)tests?(\/|$)|test-helper|\.test\.js$|^bench\/|^scripts\//.test(f)),
      [],
    );
    assert.deepEqual(
      files.filter((f) => f.endsWith('.svg')),
      ['nodes/icons/iiot-auth.svg'],
    );
    for (const script of ['credentials.js', 'editor.js', 'platforms.js'])
      assert.ok(files.includes(`resources/${script}`), `the shared editor script ${script}`);
    // The release build (what prepack runs) compiles without maps, so no shipped file names one.
    assert.match(pkg.scripts.prepack!, /scripts\/build\.js --release/);
  });

  it('no script runs when a user installs it (the scripts name development files the package does not hold)', () => {
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(pkg.scripts[hook], undefined, hook);
  });

  it('claims the Node-RED versions that pass msg.error.code to a Catch node (4.1.0 on)', () => {
    assert.equal(pkg['node-red'].version, '>=4.1.0');
  });
});
