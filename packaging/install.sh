#!/usr/bin/env sh
# Install a built hoop-kube binary and its shell completions under PREFIX (default /usr/local).
#   cargo build --release && packaging/install.sh [PREFIX]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/usr/local}
bin="$here/target/release/hoop-kube"
if [ ! -x "$bin" ]; then
  echo "install.sh: $bin not found; run 'cargo build --release' first" >&2
  exit 1
fi
install -d "$prefix/bin" "$prefix/share/bash-completion/completions" "$prefix/share/zsh/site-functions" "$prefix/share/fish/vendor_completions.d"
install -m 0755 "$bin" "$prefix/bin/hoop-kube"
install -m 0644 "$here/completions/hoop-kube.bash" "$prefix/share/bash-completion/completions/hoop-kube"
install -m 0644 "$here/completions/_hoop-kube" "$prefix/share/zsh/site-functions/_hoop-kube"
install -m 0644 "$here/completions/hoop-kube.fish" "$prefix/share/fish/vendor_completions.d/hoop-kube.fish"
echo "installed hoop-kube into $prefix"
