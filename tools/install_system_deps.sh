#!/usr/bin/env bash
# Install the Debian packages listed in deps/debian-packages.txt (main) and deps/debian-nonfree-packages.txt
# (contrib / non-free) that are missing; with --realspeech, those of deps/debian-realspeech-packages.txt instead
# (the real recordings `asr prepare realspeech` reads: ~1.7 GB, not needed by the tests).
# As root: apt-get installs them; the contrib/non-free ones through a private sources file (same mirror as the
# system's, components main contrib non-free) kept under ${XDG_CACHE_HOME:-~/.cache}/transcurrent/apt, so
# /etc/apt is never edited. Otherwise: print exactly what is missing and how to get it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

wanted_from() {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$1" | grep -v '^$' || true
}
missing_of() {
    local pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            echo "$pkg"
        fi
    done
}

nonfree_wanted=()
if [ "${1:-}" = "--realspeech" ]; then
    mapfile -t main_wanted < <(wanted_from "$here/deps/debian-realspeech-packages.txt")
elif [ -n "${1:-}" ]; then
    echo "usage: $0 [--realspeech]" >&2
    exit 2
else
    mapfile -t main_wanted < <(wanted_from "$here/deps/debian-packages.txt")
    mapfile -t nonfree_wanted < <(wanted_from "$here/deps/debian-nonfree-packages.txt")
fi
mapfile -t missing < <(missing_of "${main_wanted[@]}")
mapfile -t missing_nonfree < <(missing_of "${nonfree_wanted[@]}")
if [ ${#missing[@]} -eq 0 ] && [ ${#missing_nonfree[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    if [ ${#missing[@]} -gt 0 ]; then
        echo "error: missing Debian packages: ${missing[*]}" >&2
        echo "install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
    fi
    if [ ${#missing_nonfree[@]} -gt 0 ]; then
        echo "error: missing Debian contrib/non-free packages: ${missing_nonfree[*]}" >&2
        echo "enable the contrib and non-free components, then: sudo apt-get install --no-install-recommends" \
             "${missing_nonfree[*]} (or run 'sudo make system-deps', which uses a private sources file)" >&2
    fi
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ${#missing_nonfree[@]} -gt 0 ]; then
    echo "installing Debian contrib/non-free packages: ${missing_nonfree[*]}"
    root="${XDG_CACHE_HOME:-$HOME/.cache}/transcurrent/apt"
    mkdir -p "$root/sources" "$root/lists/partial" "$root/cache/archives/partial"
    # The mirror the system uses (deb822 .sources or a one-line sources.list), components widened.
    uri=$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    if [ -z "$uri" ]; then
        uri=$(grep -h -m1 -E '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' || true)
    fi
    uri=${uri:-http://deb.debian.org/debian}
    cat > "$root/sources/transcurrent-nonfree.sources" <<EOF2
Types: deb
URIs: $uri
Suites: $suite $suite-updates
Components: main contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF2
    opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$root/sources"
          -o "Dir::State::Lists=$root/lists" -o "Dir::Cache=$root/cache")
    apt-get "${opts[@]}" update -qq
    apt-get "${opts[@]}" install -y -qq --no-install-recommends "${missing_nonfree[@]}"
fi
