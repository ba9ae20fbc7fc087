#!/usr/bin/env sh
# Install a built hoop-kube binary and its shell completions under PREFIX (default /usr/local).
#   scripts/build-release && packaging/install.sh [PREFIX]
# Installs the static-pie build of scripts/build-release when there is one, else the plain
# `cargo build --release` binary.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
triple=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
bin="$here/target/$triple/dist/hoop-kube"
[ -n "$triple" ] && [ -x "$bin" ] || bin="$here/target/release/hoop-kube"
if [ ! -x "$bin" ]; then
  echo "install.sh: no built hoop-kube found; run 'scripts/build-release' (or 'cargo build --release') first" >&2
  exit 1
fi
install -d "$prefix/bin" "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$prefix/bin/hoop-kube"
install -m 0644 "$here/completions/hoop-kube.bash" "$prefix/share/bash-completion/completions/hoop-kube"
install -m 0644 "$here/completions/_hoop-kube" "$prefix/share/zsh/site-functions/_hoop-kube"
install -m 0644 "$here/completions/hoop-kube.fish" "$prefix/share/fish/vendor_completions.d/hoop-kube.fish"
echo "installed hoop-kube into $prefix"
