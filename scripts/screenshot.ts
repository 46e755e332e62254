/**
 * Takes the README's screenshot (docs/images/first-example.png): the editor
 * showing the first example's tab and, in the debug sidebar, what its nodes
 * output. Start the demo first, then run this against it:
 *
 *   PORT=1890 SANDBOX_PORT=1891 npm start &
 *   npm run build && node dist/scripts/screenshot.js http://127.0.0.1:1890
 *
 * Arguments: the editor's URL (default http://127.0.0.1:1880), the tab's label
 * (default "OAuth 2.0"), the output file. It drives Debian's /usr/bin/chromium
 * (never a downloaded browser), as the editor tests do.
 */
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const root = path.resolve(__dirname, '..', '..');

type Editor = {
  nodes: {
    eachWorkspace(callback: (ws: { id: string; label: string }) => void): void;
    filterNodes(filter: { z: string; type?: string }): Array<{ id: string; type: string }>;
  };
  workspaces: { show(id: string): void; active(): string };
  sidebar: { show(id: string): void };
  actions: { invoke(name: string): void };
  view: { select(selection: unknown): void };
};
declare const RED: Editor;

async function main(): Promise<void> {
  const [url = 'http://127.0.0.1:1880', tab = 'OAuth 2.0', out = path.join(root, 'docs', 'images', 'first-example.png')] = process.argv.slice(2);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(url);
    // Loaded: a tab is shown, the progress bar gone, our palette nodes there.
    await page.waitForFunction(
      () =>
        typeof RED !== 'undefined' &&
        !!RED.workspaces.active() &&
        (document.querySelector('#red-ui-loading-progress') as HTMLElement | null)?.offsetParent == null &&
        document.querySelector('.red-ui-palette-node[data-palette-type="iiot-token"]') !== null,
      undefined,
      { timeout: 30_000 },
    );
    // The tab, its debug sidebar emptied, then its injects fired again so the
    // sidebar shows this flow's messages only (the demo runs every example).
    const injects = await page.evaluate((label) => {
      let id = '';
      RED.nodes.eachWorkspace((ws) => {
        if (ws.label === label) id = ws.id;
      });
      if (!id) throw new Error(`no tab labelled ${label}`);
      RED.workspaces.show(id);
      RED.sidebar.show('debug');
      RED.actions.invoke('core:clear-debug-messages');
      RED.view.select('');
      return RED.nodes.filterNodes({ z: id, type: 'inject' }).map((n) => n.id);
    }, tab);
    const debugs = await page.evaluate((label) => {
      let id = '';
      RED.nodes.eachWorkspace((ws) => {
        if (ws.label === label) id = ws.id;
      });
      return RED.nodes.filterNodes({ z: id, type: 'debug' }).length;
    }, tab);
    for (const id of injects) {
      const res = await page.request.post(new URL(`inject/${id}`, url).toString());
      if (!res.ok()) throw new Error(`inject ${id}: ${res.status()}`);
    }
    // Every inject leads to one debug message (the error path stays quiet).
    const expected = Math.min(injects.length, debugs);
    await page.waitForFunction((n) => document.querySelectorAll('.red-ui-debug-msg').length >= n, expected, { timeout: 15_000 });
    // The API answer unfolded, and our nodes in the palette.
    const answer = page.locator('.red-ui-debug-msg').last();
    await answer.locator('.red-ui-debug-msg-row.red-ui-debug-msg-expandable').first().click();
    await answer
      .locator('.red-ui-debug-msg-row.red-ui-debug-msg-expandable', { hasText: /^payload/ })
      .last()
      .click();
    await answer
      .locator('.red-ui-debug-msg-row.red-ui-debug-msg-expandable', { hasText: /^items/ })
      .last()
      .click();
    await page.locator('#red-ui-palette-search input').pressSequentially('iiot');
    await page.locator('.red-ui-palette-node[data-palette-type="inject"]').waitFor({ state: 'hidden' });
    await page.mouse.move(0, 799);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out });
    console.log(`wrote ${out}`);
  } finally {
    await browser.close();
  }
}

main().catch((err: Error) => {
  console.error(`The screenshot failed: ${err.message}`);
  process.exit(1);
});
