#!/usr/bin/env bash
# Builds sec1000_<version>_<arch>.deb in the project directory (Docs/debian.md): the release binary
# with the Swift runtime linked in, the systemd unit, the example configuration as a conffile and
# the maintainer scripts of packaging/debian/. The version is the binary's (`bridgeVersion`);
# Depends: is what dpkg-shlibdeps finds the binary links, plus adduser for postinst.
# SCRATCH names the build folder (default .build-deb: `make reliability`'s .build-release is built
# with -enable-testing, which a shipped binary should not be, and sharing it would rebuild both).
set -euo pipefail
cd "$(dirname "$0")/.."

scratch=${SCRATCH:-.build-deb}
swift build -c release --static-swift-stdlib --scratch-path "$scratch" --product sec1000
binary="$scratch/release/sec1000"
version=$("$binary" --version)
arch=$(dpkg --print-architecture)
output="sec1000_${version}_${arch}.deb"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Staged where dpkg-shlibdeps expects a package's files: debian/PACKAGE of a source tree.
stage="$work/source/debian/sec1000"
mkdir -p "$stage/DEBIAN"

install -D -m 755 "$binary" "$stage/usr/bin/sec1000"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$stage/usr/bin/sec1000"
install -D -m 644 packaging/debian/sec1000-bridge.service "$stage/lib/systemd/system/sec1000-bridge.service"
install -d -m 755 "$stage/etc/sec1000"
"$binary" config example > "$stage/etc/sec1000/bridge.yaml"
chmod 644 "$stage/etc/sec1000/bridge.yaml"
"$binary" config check "$stage/etc/sec1000/bridge.yaml" >/dev/null

doc="$stage/usr/share/doc/sec1000"
install -D -m 644 packaging/debian/copyright "$doc/copyright"
install -D -m 644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/sec1000"
install -m 644 Docs/configuration.md Docs/debian.md "$doc/"
# A native package's changelog; dated by the last commit so that a rebuild gives the same file.
date=$(git log -1 --format=%cD 2>/dev/null || date -R)
printf 'sec1000 (%s) unstable; urgency=medium\n\n  * Version %s; the changes are in the project'"'"'s history.\n\n -- sec1000 maintainers <dev@sec1000.invalid>  %s\n' \
    "$version" "$version" "$date" | gzip -9n > "$doc/changelog.gz"
chmod 644 "$doc/changelog.gz"

# dpkg-shlibdeps reads a debian/control of a source package: a minimal one in a folder of its own.
printf 'Source: sec1000\n\nPackage: sec1000\nArchitecture: any\n' > "$work/source/debian/control"
shlibs=$(cd "$work/source" && dpkg-shlibdeps -O -e debian/sec1000/usr/bin/sec1000 | sed -n 's/^shlibs:Depends=//p')
depends="adduser, $shlibs"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@DEPENDS@/$depends/" \
    packaging/debian/control.in > "$stage/DEBIAN/control"
echo /etc/sec1000/bridge.yaml > "$stage/DEBIAN/conffiles"
install -m 755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
chmod 644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles"

dpkg-deb --root-owner-group -Zxz --build "$stage" "$output" >/dev/null
echo "built $output (Depends: $depends)"
