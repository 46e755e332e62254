import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The example flows (Import > Examples): parseable, free of credentials,
 * every reference resolvable within the file, and pointing at the sandbox's
 * default address (the demo rewrites it to the running sandbox).
 */
const root = path.resolve(__dirname, '..', '..', '..');
const dir = path.join(root, 'examples');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
const ourTypes = new Set(Object.keys(pkg['node-red'].nodes));
const CONFIG_PROPERTIES = ['insightsHubApp', 'insightsHubAgent', 'ciscoEi', 'dataTrails', 'mbp', 'app'];

type FlowNode = Record<string, unknown> & { id: string; type: string };

describe('example flows', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('cover every platform and action node', () => {
    const types = new Set(files.flatMap((f) => (JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as FlowNode[]).map((n) => n.type)));
    for (const type of ourTypes) assert.ok(types.has(type), `no example uses ${type}`);
  });

  for (const file of files) {
    describe(file, () => {
      const nodes = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as FlowNode[];
      const ids = new Set(nodes.map((n) => n.id));

      it('has unique ids, resolvable wires and config references', () => {
        assert.equal(ids.size, nodes.length);
        for (const node of nodes) {
          for (const outputs of (node.wires as string[][] | undefined) ?? []) for (const target of outputs) assert.ok(ids.has(target), `${node.id} wires to ${target}`);
          for (const property of CONFIG_PROPERTIES) {
            const ref = node[property];
            if (typeof ref === 'string' && ref) assert.ok(ids.has(ref), `${node.id}.${property} → ${ref}`);
          }
        }
      });

      it('carries no credentials, and points at the sandbox', () => {
        for (const node of nodes) {
          assert.equal(node.credentials, undefined, `${node.id} has credentials`);
          for (const key of ['clientSecret', 'password', 'boardingConfig', 'privateKey']) assert.equal(node[key], undefined, `${node.id}.${key}`);
          for (const key of ['gateway', 'server', 'url']) {
            const value = node[key];
            if (ourTypes.has(node.type) && typeof value === 'string' && /^https?:/.test(value)) assert.match(value, /^http:\/\/127\.0\.0\.1:1881(\/|$)/, `${node.id}.${key}`);
          }
        }
      });
    });
  }
});
