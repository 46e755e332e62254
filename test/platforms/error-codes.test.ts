import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CORE_ERROR_CODES } from '../../src/core/errors.js';
import { PLATFORM_DECLARATIONS } from '../../src/platforms/index.js';
import { allErrorCodes, errorCodesMarkdown } from '../../src/platforms/error-codes.js';

const root = path.join(__dirname, '..', '..', '..');

describe('error codes', () => {
  it('docs/error-codes.md is the table generated from the declared codes, and committed as such', () => {
    const onDisk = fs.readFileSync(path.join(root, 'docs', 'error-codes.md'), 'utf8');
    assert.equal(onDisk, errorCodesMarkdown(), 'docs/error-codes.md is stale: run npm run build');
    // The build rewrites the file: a difference from the committed copy means that copy was stale.
    const git = spawnSync('git', ['status', '--porcelain', '--', 'docs/error-codes.md'], { cwd: root, encoding: 'utf8' });
    if (git.status !== 0) return; // not a git checkout (an unpacked package): the check above is all there is
    // Staged counts as committed; changed since, or never added, is stale.
    const state = git.stdout.slice(0, 2);
    assert.ok(
      state === '' || (state[1] === ' ' && state !== '??'),
      `docs/error-codes.md differs from the committed one (git: "${state}"): commit the file npm run build wrote`,
    );
  });

  it('every code is declared once, as its own name, with a meaning and what to do', () => {
    const codes = allErrorCodes();
    assert.equal(new Set(codes.map((c) => c.code)).size, codes.length, 'a code is declared twice');
    for (const { code, help } of codes) {
      assert.match(code, /^[A-Z][A-Z_]+$/);
      assert.ok(help.meaning.length > 5 && help.action.length > 5, code);
    }
    // The agent's codes are the platform's, not the core's (issue 20).
    const agent = PLATFORM_DECLARATIONS.find((p) => p.id === 'insights-hub-agent')!;
    for (const code of ['AGENT_STATE_ERROR', 'AGENT_LOCKED', 'IAT_EXPIRED', 'IAT_USED', 'CLOCK_SKEW', 'SECRET_EXPIRED', 'NOT_ONBOARDED', 'OFFBOARDED']) {
      assert.ok(code in agent.errorCodes, code);
      assert.ok(!(code in CORE_ERROR_CODES), code);
    }
  });

  it('each code has a status text under 20 characters in English and German', () => {
    for (const lang of ['en-US', 'de']) {
      const file = path.join(root, 'nodes', 'locales', lang, 'iiot-token.json');
      const status = (JSON.parse(fs.readFileSync(file, 'utf8')) as { common: { status: Record<string, string> } }).common.status;
      for (const { code } of allErrorCodes()) assert.ok(status[code] && status[code].length < 20, `${lang} ${code}`);
    }
  });
});
