#!/bin/sh
# Install the bundle's Debian packages (debs/) with no network, as root.
# apt orders them (pre-dependencies first) from the local files alone: the machine's package
# sources are ignored, so nothing is downloaded. A package already installed at the same or a
# newer version is left as it is (never downgraded).
set -eu
cd "$(dirname "$0")/debs"
new=""
for f in *.deb; do
  name=$(dpkg-deb -f "$f" Package)
  version=$(dpkg-deb -f "$f" Version)
  have=$(dpkg-query -W -f '${Status} ${Version}\n' "$name" 2>/dev/null | sed -n 's/^install ok installed //p' | head -n 1)
  if [ -z "$have" ] || dpkg --compare-versions "$have" lt "$version"; then
    new="$new ./$f"
  fi
done
if [ -z "$new" ]; then
  echo "install-debs: every Debian package of the bundle is installed already"
  exit 0
fi
echo "install-debs: installing$(echo "$new" | wc -w | sed 's/^/ /') Debian packages from $(pwd)"
# shellcheck disable=SC2086  # one argument per file
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=/dev/null $new
