#!/usr/bin/env bash
# Runs the already-built test suite (dist/test, as configured in .mocharc.json)
# on another Node-RED and Node.js than the devDependencies' (`npm test`: the
# devDependency node-red 4 on the system's Node 20). CI runs it twice: on
# Node-RED 5 with Node 22 (the newest), and on Node-RED 4.1.0 with Node 20,
# the lowest version package.json claims (node-red.version).
#
# Node (the npm package `node`, unless the system's Node has that major) and
# node-red go into the git-ignored scratch folder .nr/<node-red>-node<major>/,
# installed from the npm registry once and reused while the versions are right:
#   node/      node@<major>  -> node/node_modules/node/bin/node
#   node-red/  node-red@<version> (installed by npm running on that Node, so
#              its engines check and any install scripts see it)
# The tests find that Node-RED through NODE_RED_PATH (see test/helpers/flow.ts);
# mocha (the project's own) runs on that Node binary, and that binary comes
# first on PATH for anything the tests start.
#
# Usage: scripts/test-node-red.sh <node-red version> <node major> [extra mocha arguments]
#   e.g. scripts/test-node-red.sh 5 22      (npm run test:nr5)
#        scripts/test-node-red.sh 4.1.0 20  (npm run test:nr-lowest)
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 <node-red version> <node major> [mocha arguments]" >&2
  exit 2
fi
NODE_RED_VERSION="$1"
NODE_MAJOR="$2"
shift 2

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scratch="$root/.nr/$NODE_RED_VERSION-node$NODE_MAJOR"
node_prefix="$scratch/node"
red_prefix="$scratch/node-red"
red_dir="$red_prefix/node_modules/node-red"
npm_flags=(--no-save --no-audit --no-fund --no-package-lock --loglevel=warn)

# The system's Node when it has the major asked for, else one from the registry.
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$NODE_MAJOR" ]; then
  node_bin="$(command -v node)"
else
  node_bin="$node_prefix/node_modules/node/bin/node"
fi

# "<node major> <node-red version>" of what is installed, or fails.
installed() {
  [ -x "$node_bin" ] && [ -f "$red_dir/package.json" ] || return 1
  "$node_bin" -e 'console.log(process.versions.node.split(".")[0], require(process.argv[1]).version)' "$red_dir/package.json" 2>/dev/null
}
# Whether an installed Node-RED version is the one asked for ("5" matches 5.x.y, "4.1.0" only itself).
matches() {
  local have="$1"
  [ "$have" = "$NODE_RED_VERSION" ] || [[ "$have" == "$NODE_RED_VERSION".* ]]
}

read -r have_node have_red < <(installed || echo "- -")
if [ "$have_node" = "$NODE_MAJOR" ] && matches "$have_red"; then
  echo "Reusing $scratch (Node $have_node, Node-RED $have_red)"
else
  echo "Installing Node $NODE_MAJOR and node-red@$NODE_RED_VERSION into $scratch ..."
  rm -rf "$scratch"
  mkdir -p "$node_prefix" "$red_prefix"
  if [ "$node_bin" != "$(command -v node)" ]; then
    # The `node` package fetches its binary in a preinstall script; allow that
    # one script explicitly (npm 11 warns about, or with strict-allow-scripts
    # refuses, unlisted install scripts).
    echo '{"private": true, "allowScripts": {"node": true}}' > "$node_prefix/package.json"
    npm install --prefix "$node_prefix" "${npm_flags[@]}" "node@$NODE_MAJOR"
  fi
  if ! "$node_bin" -e "process.exit(process.versions.node.split('.')[0] === '$NODE_MAJOR' ? 0 : 1)"; then
    echo "error: $node_bin is not a working Node $NODE_MAJOR binary" >&2
    exit 1
  fi
  # npm's shebang is `env node`: with that Node first on PATH, npm runs on it.
  PATH="$(dirname "$node_bin"):$PATH" npm install --prefix "$red_prefix" "${npm_flags[@]}" "node-red@$NODE_RED_VERSION"
  read -r have_node have_red < <(installed || echo "- -")
  if [ "$have_node" != "$NODE_MAJOR" ] || ! matches "$have_red"; then
    echo "error: the install in $scratch gave Node $have_node and Node-RED $have_red" >&2
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
export PATH="$(dirname "$node_bin"):$PATH"

# The header comes from the very binary that then runs mocha, and names the
# Node-RED that require.resolve(NODE_RED_PATH) gives the test helper.
"$node_bin" -e '
  const path = require("node:path");
  const main = require.resolve(process.env.NODE_RED_PATH);
  const red = require(path.join(process.env.NODE_RED_PATH, "package.json"));
  const helper = require(path.resolve("node_modules/node-red-node-test-helper/package.json"));
  console.log(`Node.js   ${process.version} (${process.execPath})`);
  console.log(`Node-RED  ${red.version} (NODE_RED_PATH=${process.env.NODE_RED_PATH}, main ${main})`);
  console.log(`helper    node-red-node-test-helper ${helper.version}`);
' 

exec "$node_bin" "$mocha" "$@"
