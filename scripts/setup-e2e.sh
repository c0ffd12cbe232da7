#!/usr/bin/env bash
# Installs what the end-to-end tests need: code-server 4.100.3 (= VS Code 1.100.3) from the npm
# registry and Debian's Chromium, without reaching GitHub or Microsoft's CDN (shared/docs/E2E.md).
# Idempotent: a finished install leaves a marker and is skipped the next time.
#
#   bash scripts/setup-e2e.sh            # installs into $QUANTLENS_E2E_HOME (default ~/.cache/quantlens-e2e)
#
# The folder lies outside the source tree so that vsce, tsc and test discovery never walk it;
# test/e2e/harness.ts resolves the same default.
set -euo pipefail
CODE_SERVER_VERSION=4.100.3
E2E_HOME=${QUANTLENS_E2E_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/quantlens-e2e}
CS=$E2E_HOME/code-server
MARKER=$CS/.installed-$CODE_SERVER_VERSION

export npm_config_yes=true        # node-pty's install script runs `npx node-gyp`; ~/.npmrc may say yes=false
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
# node-gyp must build against the local Node headers instead of downloading them from nodejs.org
[ -f /usr/include/node/common.gypi ] && export npm_config_nodedir=${npm_config_nodedir:-/usr}

t0=$(date +%s)
log() { echo "[setup-e2e] $*"; }

# 1. system packages, only the missing ones (kerberos needs libkrb5-dev; rg replaces the GitHub download)
need=()
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
dpkg -s ripgrep >/dev/null 2>&1 || need+=(ripgrep)
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  log "apt: ${need[*]}"
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
t1=$(date +%s); log "apt: $((t1 - t0))s"

if [ -f "$MARKER" ]; then
  log "code-server $CODE_SERVER_VERSION already installed in $CS"
  exit 0
fi

# 2. code-server without its postinstall (which would `npm install` lib/vscode and so trigger
#    @vscode/ripgrep's GitHub download); argon2 is loaded even with --auth none: build it from source
#    rather than fetching a prebuilt binary from GitHub.
mkdir -p "$CS" && cd "$CS"
[ -f package.json ] || echo '{"name":"quantlens-e2e-code-server","private":true}' > package.json
npm install --no-save --ignore-scripts "code-server@$CODE_SERVER_VERSION"
npm_config_build_from_source=true npm rebuild argon2
t2=$(date +%s); log "code-server package: $((t2 - t1))s"

# 3. VS Code server dependencies with scripts off, Debian's rg in place (so @vscode/ripgrep's
#    postinstall skips its download), then the install scripts (kerberos, node-pty, spdlog, ...)
cd "$CS/node_modules/code-server/lib/vscode"
npm install --omit=dev --ignore-scripts
mkdir -p node_modules/@vscode/ripgrep/bin
cp /usr/bin/rg node_modules/@vscode/ripgrep/bin/rg
npm rebuild
t3=$(date +%s); log "lib/vscode deps + native rebuild: $((t3 - t2))s"

# 4. the remaining steps of code-server's postinstall.sh (vscode_install)
rm -rf node_modules.asar && ln -s node_modules node_modules.asar
(cd bin/remote-cli && rm -rf code-server && ln -s code-linux.sh code-server)
(cd bin/helpers && rm -rf browser.sh && ln -s browser-linux.sh browser.sh)
(cd extensions && npm install --omit=dev)
t4=$(date +%s); log "postinstall steps: $((t4 - t3))s"

# code-server writes ~/.config/code-server/config.yaml on first run unless XDG_CONFIG_HOME points elsewhere
version=$(XDG_CONFIG_HOME=$E2E_HOME/xdg-config XDG_DATA_HOME=$E2E_HOME/xdg-data "$CS/node_modules/.bin/code-server" --version | tail -1)
log "code-server --version: $version"
touch "$MARKER"
log "total: $(($(date +%s) - t0))s"
