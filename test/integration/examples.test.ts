import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PLATFORM_DECLARATIONS } from '../../src/platforms/index.js';

/**
 * The example flows (Import > Examples): parseable, free of credentials,
 * every reference resolvable within the file, and pointing at the sandbox's
 * default address (the demo rewrites it to the running sandbox).
 */
const root = path.resolve(__dirname, '..', '..', '..');
const dir = path.join(root, 'examples');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } };
const ourTypes = new Set(Object.keys(pkg['node-red'].nodes));
/** The properties that reference a config node: each platform's (from its declaration), and the agent node's app. */
const CONFIG_PROPERTIES = [...PLATFORM_DECLARATIONS.map((p) => p.property), 'app'];

type FlowNode = Record<string, unknown> & { id: string; type: string };

/**
 * The canvas as the editor draws a node, estimated (no browser here): a box
 * of at least 100 px, wide enough for its label (at most 7 px a character,
 * Helvetica 14 px, plus the icon), 30 px high, centred on (x, y); an inject's
 * button sticks out 25 px on the left, a debug's on the right. Action nodes of
 * this package show a status under the box (up to 20 characters).
 */
interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}
const DEFAULT_LABELS: Record<string, string> = {
  'iiot-token': 'get token',
  'iiot-request': 'authenticated request',
  'iiot-agent': 'onboard agent',
  'iiot-app-registration': 'app registration',
  debug: 'msg.payload',
  catch: 'catch: all',
  'http request': 'http request',
  inject: 'timestamp',
};
function labelOf(node: FlowNode): string {
  if (typeof node.name === 'string' && node.name) return node.name;
  if (node.type === 'iiot-agent' && typeof node.action === 'string' && !['msg', 'onboard'].includes(node.action)) return `agent: ${node.action}`;
  return DEFAULT_LABELS[node.type] ?? node.type;
}
function boxOf(node: FlowNode): Box {
  const x = node.x as number;
  const y = node.y as number;
  const w = Math.max(100, 20 * Math.ceil((labelOf(node).length * 7 + 50 + (node.type === 'inject' ? 0 : 7)) / 20));
  return {
    left: x - w / 2 - (node.type === 'inject' ? 25 : 0),
    right: x + w / 2 + (node.type === 'debug' ? 25 : 0),
    top: y - 15,
    bottom: y + 15,
  };
}
function statusBoxOf(node: FlowNode): Box | undefined {
  if (!ourTypes.has(node.type)) return undefined;
  const body = boxOf(node);
  return { left: body.left, right: body.left + 20 * 7 + 20, top: body.bottom + 2, bottom: body.bottom + 20 };
}
const overlap = (a: Box, b: Box, margin = 0) =>
  a.left < b.right + margin && b.left < a.right + margin && a.top < b.bottom + margin && b.top < a.bottom + margin;
const inside = (p: { x: number; y: number }, b: Box) => p.x > b.left && p.x < b.right && p.y > b.top && p.y < b.bottom;

/** Points along a wire as the editor draws it: a cubic curve from the output port to the input port. */
function wirePoints(from: FlowNode, to: FlowNode): Array<{ x: number; y: number }> {
  const a = { x: (from.x as number) + (boxOf({ ...from, type: 'x' }).right - (from.x as number)) + 5, y: from.y as number };
  const b = { x: (to.x as number) - ((to.x as number) - boxOf({ ...to, type: 'x' }).left) - 5, y: to.y as number };
  const delta = Math.hypot(b.x - a.x, b.y - a.y);
  const scale = delta < 100 ? 0.75 - 0.75 * ((100 - delta) / 100) : 0.75;
  const c1 = { x: a.x + 100 * scale, y: a.y };
  const c2 = { x: b.x - 100 * scale, y: b.y };
  const points = [];
  for (let i = 1; i < 40; i++) {
    const t = i / 40;
    const u = 1 - t;
    points.push({
      x: u ** 3 * a.x + 3 * u * u * t * c1.x + 3 * u * t * t * c2.x + t ** 3 * b.x,
      y: u ** 3 * a.y + 3 * u * u * t * c1.y + 3 * u * t * t * c2.y + t ** 3 * b.y,
    });
  }
  return points;
}

describe('example flows', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

  it('cover every platform and action node', () => {
    const types = new Set(files.flatMap((f) => (JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as FlowNode[]).map((n) => n.type)));
    for (const type of ourTypes) assert.ok(types.has(type), `no example uses ${type}`);
  });

  it('names every config node distinctly (the demo loads them all into one editor)', () => {
    const names = files.flatMap((f) =>
      (JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as FlowNode[])
        .filter((n) => ourTypes.has(n.type) && n.x === undefined)
        .map((n) => String(n.name ?? '')),
    );
    assert.ok(
      names.every((n) => n !== ''),
      'every config node has a name',
    );
    assert.deepEqual(
      names.filter((n, i) => names.indexOf(n) !== i),
      [],
      'names used twice',
    );
  });

  it('tab texts keep placeholders such as <userDir> visible (in code spans), and speak to both demo and palette users', () => {
    for (const file of files) {
      for (const tab of (JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as FlowNode[]).filter((n) => n.type === 'tab')) {
        const info = String(tab.info ?? '');
        // Outside code spans, "<word>" is an HTML tag to the markdown renderer: it vanishes.
        const outsideCode = info.replace(/`[^`]*`/g, '');
        assert.doesNotMatch(outsideCode, /<[a-zA-Z][^>]*>/, `${file}: a placeholder outside a code span`);
        assert.match(info, /npm start/, `${file}: says what the demo (npm start) has filled in`);
      }
    }
  });

  for (const file of files) {
    describe(file, () => {
      const nodes = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as FlowNode[];
      const ids = new Set(nodes.map((n) => n.id));

      it('has unique ids, resolvable wires and config references', () => {
        assert.equal(ids.size, nodes.length);
        for (const node of nodes) {
          for (const outputs of (node.wires as string[][] | undefined) ?? [])
            for (const target of outputs) assert.ok(ids.has(target), `${node.id} wires to ${target}`);
          for (const property of CONFIG_PROPERTIES) {
            const ref = node[property];
            if (typeof ref === 'string' && ref) assert.ok(ids.has(ref), `${node.id}.${property} → ${ref}`);
          }
        }
      });

      it('lays out every node inside the canvas, no two overlapping (status included), no wire across a node or a status', () => {
        const drawn = nodes.filter((n) => typeof n.x === 'number' && typeof n.y === 'number');
        for (const node of drawn) {
          const box = boxOf(node);
          assert.ok(box.left >= 0 && box.top >= 0, `${node.id} ("${labelOf(node)}") reaches past the canvas's edge: ${JSON.stringify(box)}`);
        }
        const areas = drawn.map((node) => ({ node, boxes: [boxOf(node), statusBoxOf(node)].filter((b): b is Box => b !== undefined) }));
        for (const [i, a] of areas.entries()) {
          for (const b of areas.slice(i + 1)) {
            const hit = a.boxes.some((x) => b.boxes.some((y) => overlap(x, y, 5)));
            assert.ok(!hit, `"${labelOf(a.node)}" (${a.node.id}) and "${labelOf(b.node)}" (${b.node.id}) overlap`);
          }
        }
        const byId = new Map(drawn.map((n) => [n.id, n]));
        for (const from of drawn) {
          for (const targets of (from.wires as string[][] | undefined) ?? []) {
            for (const id of targets) {
              const to = byId.get(id)!;
              const points = wirePoints(from, to);
              for (const other of areas) {
                const crossed = other.boxes.filter((box, k) => (other.node === from || other.node === to ? k > 0 : true) && points.some((p) => inside(p, box)));
                assert.deepEqual(crossed, [], `the wire ${from.id} → ${to.id} crosses "${labelOf(other.node)}" (${other.node.id}) or its status`);
              }
            }
          }
        }
      });

      it('carries no credentials, and points at the sandbox', () => {
        for (const node of nodes) {
          assert.equal(node.credentials, undefined, `${node.id} has credentials`);
          for (const key of ['clientSecret', 'password', 'boardingConfig', 'privateKey']) assert.equal(node[key], undefined, `${node.id}.${key}`);
          for (const key of ['gateway', 'server', 'url', 'issuer', 'tokenUrl', 'apiUrl']) {
            const value = node[key];
            if (ourTypes.has(node.type) && typeof value === 'string' && /^https?:/.test(value))
              assert.match(value, /^http:\/\/127\.0\.0\.1:1881(\/|$)/, `${node.id}.${key}`);
          }
        }
      });
    });
  }
});
