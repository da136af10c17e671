/*
 * mount.h: one node's native state, behind one FUSE mount.
 *
 * The hooks (fuse-hooks.h) find a volume by the request's file handle and
 * serve it: on a primary, reads by pread and writes through the journal's
 * critical section; on a DR, reads of present regions under the apply lock.
 * Everything else returns VOLMIRROR_PASS and goes to JavaScript.
 *
 * Lifetime: JavaScript stops the mount after unmounting: new hook calls are
 * refused (they pass), blocked writers fail with EIO, and the calls in
 * flight are waited for; JavaScript then drains the last journal entries
 * and frees the mount: everything but this struct, which a straggling hook
 * call may still read (it is small, and never reused).
 */
#ifndef VOLMIRROR_MOUNT_H
#define VOLMIRROR_MOUNT_H

#include <stdatomic.h>
#include <stdint.h>

#include "dr.h"
#include "fuse-hooks.h"
#include "journal.h"
#include "table.h"

#define VM_PRIMARY 0
#define VM_DR 1

typedef struct {
  _Atomic uint64_t reads, read_bytes, passed_reads, passed_writes;
} vm_mount_stats_t;

typedef struct vm_mount {
  volmirror_hooks_t hooks;
  int kind;
  uint32_t shift;
  vm_table_t volumes;
  vm_table_t handles;
  vm_journal_t journal;
  int journal_on;
  vm_dr_t dr;
  atomic_int inflight;
  atomic_int closed;
  vm_mount_stats_t stats;
  /* Set by the addon: how a FUSE thread wakes JavaScript. */
  void *wake_arg;
} vm_mount_t;

vm_mount_t *vm_mount_new (int kind, uint32_t region_shift);
/* vm_mount_stop and vm_mount_free: see above. Main thread, after unmounting. */
/* vm_mount_stop returns the hook calls still in flight after waiting (0: none). */
int vm_mount_stop (vm_mount_t *m);
void vm_mount_free (vm_mount_t *m);

int vm_hook_read (void *ctx, const char *path, uint64_t fh, char *buf, size_t len, off_t offset);
int vm_hook_write (void *ctx, const char *path, uint64_t fh, const char *buf, size_t len, off_t offset);

#endif
