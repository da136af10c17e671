/*
 * fuse-hooks.h: the hook table that the patched fuse-native calls before it
 * hands a read or write to JavaScript (native/patches/fuse-native+2.2.6.patch
 * defines the same struct; volmirror_hooks_abi must match on both sides).
 *
 * A hook runs on the libfuse worker thread that received the request. It
 * answers (bytes done, or -errno) or returns VOLMIRROR_PASS, and the request
 * goes to JavaScript as it always did. It must not call N-API.
 */
#ifndef VOLMIRROR_FUSE_HOOKS_H
#define VOLMIRROR_FUSE_HOOKS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define VOLMIRROR_HOOKS_ABI 1
#define VOLMIRROR_PASS (-0x7fff0000)

typedef struct {
  uint32_t abi;
  void *ctx;
  int (*read)(void *ctx, const char *path, uint64_t fh, char *buf, size_t len, off_t offset);
  int (*write)(void *ctx, const char *path, uint64_t fh, const char *buf, size_t len, off_t offset);
} volmirror_hooks_t;

#endif
