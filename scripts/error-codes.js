#!/usr/bin/env node
// Writes docs/error-codes.md, the one table of error codes, from the core's
// codes (src/core/errors.ts) and each platform's declared ones (its
// declaration's errorCodes). Run by scripts/build.js after tsc; the test
// test/platforms/error-codes.test.ts fails when the committed copy is stale.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const { errorCodesMarkdown } = require(path.join(root, 'dist', 'src', 'platforms', 'error-codes.js'));
fs.writeFileSync(path.join(root, 'docs', 'error-codes.md'), errorCodesMarkdown());
