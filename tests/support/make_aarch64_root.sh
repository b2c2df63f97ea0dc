#!/usr/bin/env bash
# Build, once, an aarch64 "Raspberry Pi" Python root that qemu-aarch64 runs on this x86 machine.
#
#   make_aarch64_root.sh [DEST]      DEST defaults to $EDGEKD_AARCH64_ROOT, else
#                                    /var/cache/edgekd-tests/aarch64 (readable by the sshd test users,
#                                    which a root-owned $XDG_CACHE_HOME under /root would not be)
#
# DEST/root              Debian bookworm arm64 .debs (python3.11 and the C libraries the wheels need),
#                        fetched with `apt-get download` through a private apt state (the host's dpkg
#                        architectures are left alone) and unpacked with `dpkg -x`; a fake ARM
#                        /proc/cpuinfo per board (onnxruntime and cpuinfo-based libraries crash under
#                        qemu 7.2 reading the x86 one): DEST/boards/{pi5,pi4}, for qemu -L.
# DEST/flavours/litert   ai-edge-litert + numpy 2          (current Raspberry Pi OS)
# DEST/flavours/tflite   tflite-runtime 2.14 + numpy < 2   (older Pi images)
#                        both from the real manylinux aarch64 wheels on PyPI.
# DEST/flavours/tflite-numpy2  tflite-runtime 2.14 + numpy 2 (a Pi where `pip install numpy` upgraded numpy
#                        under tflite-runtime: the interpreter raises SystemError), symlinks into the two above.
# DEST/.complete         written last; its presence means the root is usable (the build is idempotent).
#
# Needs network access to Debian and PyPI, qemu-user for the smoke test; about a minute the first time.
set -euo pipefail

DEST="${1:-${EDGEKD_AARCH64_ROOT:-/var/cache/edgekd-tests/aarch64}}"
STAMP_VERSION="5"  # bump when the contents below change, to rebuild cached roots
PYTHON="${EDGEKD_HOST_PYTHON:-python3}"

ready() { [[ -f "$DEST/.complete" && "$(cat "$DEST/.complete")" == "$STAMP_VERSION" ]]; }
if ready; then
  echo "aarch64 root ready at $DEST"
  exit 0
fi
# One build at a time (test sessions may start together); the loser finds the root ready.
mkdir -p "$(dirname "$DEST")"
exec 9>"$DEST.lock"
flock 9
if ready; then
  echo "aarch64 root ready at $DEST"
  exit 0
fi

command -v qemu-aarch64 >/dev/null || { echo "qemu-aarch64 missing: apt-get install qemu-user" >&2; exit 3; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/edgekd-aarch64-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
NEW="$DEST.new.$$"
rm -rf "$NEW"
mkdir -p "$NEW/root" "$NEW/flavours" "$WORK/apt/lists/partial" "$WORK/apt/archives/partial" "$WORK/debs"

# --- 1. Debian arm64 packages, through a private apt state -------------------------------------------
APT_OPTS=(
  -o "APT::Architecture=arm64" -o "APT::Architectures::=arm64"
  -o "Dir::State=$WORK/apt" -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::State::status=/dev/null"
  -o "Dir::Cache=$WORK/apt" -o "Dir::Cache::Archives=$WORK/apt/archives"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root"
)
apt-get "${APT_OPTS[@]}" -qq update
PACKAGES=(
  libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5
  libsqlite3-0 libuuid1 libcrypt1 libncursesw6 libtinfo6 libreadline8 libzstd1 libgomp1
  python3.11-minimal libpython3.11-minimal libpython3.11-stdlib media-types
)
(cd "$WORK/debs" && apt-get "${APT_OPTS[@]}" -qq download "${PACKAGES[@]/%/:arm64}")
for deb in "$WORK"/debs/*.deb; do
  dpkg -x "$deb" "$NEW/root"
done
ln -sf python3.11 "$NEW/root/usr/bin/python3"

# Per board: a tree of symlinks into root/ plus the board's own /proc/cpuinfo as the kernel prints it
# (qemu -L serves files under the prefix to the guest). Run with the board's core: qemu -cpu cortex-a76
# for a Pi 5, cortex-a72 for a Pi 4 (not qemu's default "max", whose extra ISA features make XNNPACK
# pick int8 kernels that qemu 7.2 emulates wrongly).
board_root() {  # board_root NAME PART VARIANT REVISION FEATURES MODEL BOARD_REVISION
  local dir="$NEW/boards/$1"
  mkdir -p "$dir/proc"
  for entry in "$NEW"/root/*; do ln -s "../../root/$(basename "$entry")" "$dir/$(basename "$entry")"; done
  {
    for cpu in 0 1 2 3; do
      printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\n' "$cpu" "$5"
      printf 'CPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$3" "$2" "$4"
    done
    printf 'Revision\t: %s\nSerial\t\t: 0000000000000000\nModel\t\t: %s\n' "$7" "$6"
  } > "$dir/proc/cpuinfo"
}
board_root pi5 0xd0b 0x4 1 "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" \
  "Raspberry Pi 5 Model B Rev 1.0" d04170
board_root pi4 0xd08 0x0 3 "fp asimd evtstrm crc32 cpuid" "Raspberry Pi 4 Model B Rev 1.4" c03114

# --- 2. The real aarch64 wheels, one directory per device flavour ------------------------------------
pip_target() {  # pip_target DIR REQUIREMENT...
  local target="$1"; shift
  PIP_CONSTRAINT="" "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$target" --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux_2_27_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux_2_31_aarch64 --platform manylinux_2_34_aarch64 \
    --no-warn-conflicts "$@"
}
pip_target "$NEW/flavours/litert" "ai-edge-litert==2.3.0" "numpy>=2,<2.5"
pip_target "$NEW/flavours/tflite" "tflite-runtime==2.14.0" "numpy<2"
mkdir -p "$NEW/flavours/tflite-numpy2"
for entry in "$NEW"/flavours/tflite/tflite_runtime* "$NEW"/flavours/litert/numpy*; do
  ln -s "../$(basename "$(dirname "$entry")")/$(basename "$entry")" "$NEW/flavours/tflite-numpy2/$(basename "$entry")"
done

# --- 3. Smoke test: both flavours import under emulation ---------------------------------------------
for pair in litert:pi5:cortex-a76 tflite:pi4:cortex-a72; do
  IFS=: read -r flavour board cpu <<< "$pair"
  PYTHONPATH="$NEW/flavours/$flavour" PYTHONNOUSERSITE=1 \
    qemu-aarch64 -cpu "$cpu" -L "$NEW/boards/$board" "$NEW/root/usr/bin/python3.11" -c \
    "import platform, numpy; print('$flavour on $board:', platform.machine(), numpy.__version__)"
done

chmod -R a+rX "$NEW"
echo "$STAMP_VERSION" > "$NEW/.complete"
rm -rf "$DEST"
mv "$NEW" "$DEST"
echo "aarch64 root built at $DEST ($(du -sh "$DEST" | cut -f1))"
