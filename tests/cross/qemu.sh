#!/bin/sh
# The qemu-user program that runs binaries for a Debian cross triple.
case $1 in
  aarch64-linux-gnu) echo qemu-aarch64 ;;
  arm-linux-gnueabihf) echo qemu-arm ;;
  riscv64-linux-gnu) echo qemu-riscv64 ;;
  *) echo "unknown target '$1'" >&2; exit 2 ;;
esac
