#!/usr/bin/env bash
# Runs the already-built test suite (dist/test, as configured in .mocharc.json)
# on Node-RED 5 with Node.js 22, next to the usual run (`npm test`: the
# devDependency node-red 4 on the system's Node 20).
#
# Node 22 (the npm package `node`) and node-red@5 go into the git-ignored
# scratch folder .nr5/, installed from the npm registry once and reused while
# their major versions are right:
#   .nr5/node/      node@22   -> .nr5/node/node_modules/node/bin/node
#   .nr5/node-red/  node-red@5 (installed by npm running on Node 22, so its
#                   engines check and any install scripts see Node 22)
# The tests find Node-RED 5 through NODE_RED_PATH (see test/helpers/flow.ts);
# mocha (the project's own) runs on the Node 22 binary, and that binary comes
# first on PATH for anything the tests start.
#
# Usage: scripts/test-node-red-5.sh [extra mocha arguments]
#        (npm run test:nr5 builds first, then calls this)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

NODE_MAJOR=22
NODE_RED_MAJOR=5
scratch="$root/.nr5"
node_prefix="$scratch/node"
red_prefix="$scratch/node-red"
node22="$node_prefix/node_modules/node/bin/node"
red_dir="$red_prefix/node_modules/node-red"
npm_flags=(--no-save --no-audit --no-fund --no-package-lock --loglevel=warn)

# Prints "<node major> <node-red major>" for what is in .nr5, or fails.
installed_majors() {
  [ -x "$node22" ] && [ -f "$red_dir/package.json" ] || return 1
  "$node22" -e '
    const red = require(process.argv[1]);
    console.log(process.versions.node.split(".")[0], red.version.split(".")[0]);
  ' "$red_dir/package.json" 2>/dev/null
}

if [ "$(installed_majors || true)" = "$NODE_MAJOR $NODE_RED_MAJOR" ]; then
  echo "Reusing .nr5 (Node $NODE_MAJOR, Node-RED $NODE_RED_MAJOR)"
else
  echo "Installing node@$NODE_MAJOR and node-red@$NODE_RED_MAJOR into .nr5 ..."
  rm -rf "$scratch"
  mkdir -p "$node_prefix" "$red_prefix"
  # The `node` package fetches its binary in a preinstall script; allow that
  # one script explicitly (npm 11 warns about, or with strict-allow-scripts
  # refuses, unlisted install scripts).
  echo '{"private": true, "allowScripts": {"node": true}}' > "$node_prefix/package.json"
  npm install --prefix "$node_prefix" "${npm_flags[@]}" "node@$NODE_MAJOR"
  if ! "$node22" -e "process.exit(process.versions.node.split('.')[0] === '$NODE_MAJOR' ? 0 : 1)"; then
    echo "error: $node22 is not a working Node $NODE_MAJOR binary" >&2
    exit 1
  fi
  # npm's shebang is `env node`: with Node 22 first on PATH, npm runs on it.
  PATH="$(dirname "$node22"):$PATH" npm install --prefix "$red_prefix" "${npm_flags[@]}" "node-red@$NODE_RED_MAJOR"
  if [ "$(installed_majors || true)" != "$NODE_MAJOR $NODE_RED_MAJOR" ]; then
    echo "error: the install in .nr5 did not give Node $NODE_MAJOR and Node-RED $NODE_RED_MAJOR" >&2
    exit 1
  fi
fi

if [ ! -d "$root/dist/test" ]; then
  echo "error: dist/test does not exist; build first (npm run build)" >&2
  exit 1
fi

mocha="$root/node_modules/mocha/bin/mocha.js"
if [ ! -f "$mocha" ]; then
  echo "error: $mocha not found; run npm ci first" >&2
  exit 1
fi

export NODE_RED_PATH="$red_dir"
export PATH="$(dirname "$node22"):$PATH"

# The header comes from the very binary that then runs mocha, and names the
# Node-RED that require.resolve(NODE_RED_PATH) gives the test helper.
"$node22" -e '
  const path = require("node:path");
  const main = require.resolve(process.env.NODE_RED_PATH);
  const red = require(path.join(process.env.NODE_RED_PATH, "package.json"));
  const helper = require(path.resolve("node_modules/node-red-node-test-helper/package.json"));
  console.log(`Node.js   ${process.version} (${process.execPath})`);
  console.log(`Node-RED  ${red.version} (NODE_RED_PATH=${process.env.NODE_RED_PATH}, main ${main})`);
  console.log(`helper    node-red-node-test-helper ${helper.version}`);
  if (process.versions.node.split(".")[0] !== process.argv[1] || red.version.split(".")[0] !== process.argv[2]) {
    console.error(`error: expected Node ${process.argv[1]}.x and Node-RED ${process.argv[2]}.x`);
    process.exit(1);
  }
' "$NODE_MAJOR" "$NODE_RED_MAJOR"

exec "$node22" "$mocha" "$@"
