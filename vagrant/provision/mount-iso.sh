#!/bin/bash
# Mounts the MetalK8s ISO attached to this VM as a CD-ROM at
# /srv/scality/metalk8s-<VERSION>, VERSION read from the ISO's product.txt,
# through /etc/fstab so that the mount survives reboots (chapter 3.1.1).
# Prints nothing else on stdout but progress; fails naming what is wrong.
set -euo pipefail

ARCHIVES=${ARCHIVES:-/srv/scality}
FSTAB=/etc/fstab

die() { echo "mount-iso: $*" >&2; exit 1; }

# product.txt is KEY=VALUE lines; the buildchain writes values plain, or in
# single or double quotes holding nothing a shell would expand
# (product.Quote), so they are read here without sourcing the file.
product_value() {
    local file=$1 key=$2 line value
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
            "$key="*)
                value=${line#"$key="}
                case $value in
                    \'*\'|\"*\") value=${value:1:${#value}-2} ;;
                esac
                printf '%s\n' "$value"
                return 0
                ;;
        esac
    done < "$file"
    return 1
}

probe=$(mktemp -d)
trap 'umount "$probe" 2>/dev/null || true; rmdir "$probe"' EXIT

device=
for dev in /dev/sr* /dev/cdrom*; do
    [ -b "$dev" ] || continue
    if mount -o ro -t iso9660 "$dev" "$probe" 2>/dev/null; then
        if [ -f "$probe/product.txt" ] && [ "$(product_value "$probe/product.txt" NAME || true)" = MetalK8s ]; then
            device=$dev
            version=$(product_value "$probe/product.txt" VERSION) ||
                die "$dev: product.txt has no VERSION"
        fi
        umount "$probe"
        [ -n "$device" ] && break
    fi
done
[ -n "$device" ] || die "no CD-ROM holds a MetalK8s ISO (product.txt with NAME=MetalK8s): is METALK8S_ISO attached?"
case $version in
    *[!A-Za-z0-9._+-]*|'') die "$device: product.txt: VERSION '$version' is not a version" ;;
esac

# By UUID (iso9660's is its creation time): the device name of a CD-ROM may
# change between boots, and a rebuilt ISO gets a new line on re-provision.
uuid=$(blkid -s UUID -o value "$device") || die "$device: blkid found no UUID"
target=$ARCHIVES/metalk8s-$version
mkdir -p "$target"

if mountpoint -q "$target"; then
    umount "$target"
fi
tmp=$(mktemp "$FSTAB.XXXXXX")
awk -v t="$target" '$2 != t' "$FSTAB" > "$tmp"
printf 'UUID=%s %s iso9660 ro,nofail 0 0\n' "$uuid" "$target" >> "$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$FSTAB"
mount "$target"
echo "mount-iso: $device (MetalK8s $version) mounted at $target"
echo "$target" > "$ARCHIVES/.metalk8s-iso"
