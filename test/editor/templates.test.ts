import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { PlatformDeclaration } from '../../src/platforms/declaration.js';
import { PLATFORM_DECLARATIONS } from '../../src/platforms/index.js';

/**
 * The rows of the edit templates that follow from the platform declarations
 * are written into nodes/*.html by scripts/build.js (scripts/editor-templates.js),
 * not at run time: Node-RED loads the committed files, so they must be up
 * to date. Fails when a template's generated rows differ from what the
 * declarations give (run `npm run build` and commit).
 */
const root = path.resolve(__dirname, '..', '..', '..');
const templates = require(path.join(root, 'scripts', 'editor-templates.js')) as {
  fill(text: string, declarations: readonly PlatformDeclaration[], file?: string): string;
  blockNames(text: string): string[];
  updateTemplates(root: string, declarations: readonly PlatformDeclaration[], options: { write: boolean }): string[];
};
const read = (name: string) => fs.readFileSync(path.join(root, 'nodes', name), 'utf8');

describe("the edit templates' generated rows (scripts/build.js)", () => {
  it('every committed nodes/*.html is up to date with the platform declarations', () => {
    assert.deepEqual(
      templates.updateTemplates(root, PLATFORM_DECLARATIONS, { write: false }),
      [],
      'stale: run `npm run build` and commit the files it changes',
    );
  });

  it('every config node has its TLS and proxy rows; get token and authenticated request a row per platform', () => {
    for (const p of PLATFORM_DECLARATIONS) {
      const text = read(`${p.configType}.html`);
      assert.deepEqual(templates.blockNames(text), ['tls-proxy-rows'], p.configType);
      assert.match(text, /id="node-config-input-tls"/);
      assert.match(text, /id="node-config-input-proxy"/);
    }
    for (const type of ['iiot-token', 'iiot-request']) {
      const text = read(`${type}.html`);
      assert.deepEqual(templates.blockNames(text), ['platform-rows'], type);
      for (const p of PLATFORM_DECLARATIONS) assert.ok(text.includes(`<input type="text" id="node-input-${p.property}">`), `${type}: ${p.id}`);
    }
  });

  it('a hand-edited or stale block is found and written anew; an unknown block is an error', () => {
    const text = read('iiot-mbp.html');
    const edited = text.replace('<input type="text" id="node-config-input-proxy">', '');
    assert.notEqual(templates.fill(edited, PLATFORM_DECLARATIONS), edited, 'a changed block is stale');
    assert.equal(templates.fill(edited, PLATFORM_DECLARATIONS), text, 'and written back as the declarations give it');
    const fewer = read('iiot-token.html');
    assert.notEqual(templates.fill(fewer, PLATFORM_DECLARATIONS.slice(1)), fewer, 'a platform less: the rows change');
    const unknown = text.replace(/tls-proxy-rows/g, 'other-rows');
    assert.throws(() => templates.fill(unknown, PLATFORM_DECLARATIONS, 'nodes/iiot-mbp.html'), /nodes\/iiot-mbp\.html: unknown generated block "other-rows"/);
  });

  it('nothing rewrites a template at run time', () => {
    const editor = fs.readFileSync(path.join(root, 'resources', 'editor.js'), 'utf8');
    assert.doesNotMatch(editor, /data-template-name/, 'resources/editor.js reads no edit template');
    for (const name of fs.readdirSync(path.join(root, 'nodes')).filter((f) => f.endsWith('.html'))) {
      assert.doesNotMatch(read(name), /<!-- iiot-auth:/, `${name}: a marker for run-time rows`);
    }
  });
});
