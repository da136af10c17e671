/*
 * table.h: volumes (one open image each) and the FUSE handles bound to them.
 *
 * A vm_volume_t is the native twin of a JavaScript VolumeFile: its own
 * descriptor (a dup, so JavaScript closing its fd never pulls one from under
 * a native op), the name records carry (primary), the seqlock versions of
 * its regions, and the DR volume id whose presence map guards its reads.
 *
 * Ids come from a vm_table_t: slot ids name volumes for JavaScript, handle
 * ids are the FUSE file handles (fi->fh) of opens. Both map to a volume
 * holding a reference. Lookups take the table's read lock just long enough
 * to take a reference of their own; the last reference closes the fd.
 */
#ifndef VOLMIRROR_TABLE_H
#define VOLMIRROR_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define VM_VERSION_BUCKETS 512
#define VM_TABLE_PAGE 1024
#define VM_TABLE_PAGES 1024

typedef struct vm_volume {
  atomic_int refs;
  int fd;
  uint32_t slot;
  /* Set when JavaScript dropped the volume (deleted, replaced): ops go to JavaScript. */
  atomic_int gone;
  /* Written since the last vm_take_dirty (the checkpoint fdatasyncs it). */
  atomic_int dirty;
  /* DR: the volume id of its presence map (-1: none, reads go to JavaScript). */
  _Atomic int32_t vol_id;
  /* DR: where the last native read ended (read-ahead follows sequential readers with it). */
  _Atomic uint64_t read_end;
  /* Primary: the name records carry. Changed only while the journal is paused. */
  char *name;
  uint16_t name_len;
  /*
   * Seqlock versions: per bucket (region % VM_VERSION_BUCKETS), the seq of the
   * last write that began in one of its regions. Stored before the image is
   * written, so a reader that sees the same version before and after its read
   * and a version not above the seq it reads as of saw no write in progress.
   */
  _Atomic uint64_t versions[VM_VERSION_BUCKETS];
} vm_volume_t;

typedef struct {
  pthread_rwlock_t lock;
  vm_volume_t **pages[VM_TABLE_PAGES];
  uint32_t *free_ids;
  uint32_t nfree, capfree;
  uint32_t next;
  uint32_t count;
} vm_table_t;

void vm_table_init (vm_table_t *t);
/* vm_table_put stores v (taking a reference) under a new id (>= 1); 0 when full. */
uint32_t vm_table_put (vm_table_t *t, vm_volume_t *v);
/* vm_table_get returns the volume under id with a reference taken, or NULL. */
vm_volume_t *vm_table_get (vm_table_t *t, uint64_t id);
/* vm_table_remove drops id and its reference; returns whether it was there. */
int vm_table_remove (vm_table_t *t, uint32_t id);
/* vm_table_each calls fn for every volume (under the read lock). */
void vm_table_each (vm_table_t *t, void (*fn)(vm_volume_t *, void *), void *arg);
/* vm_table_clear drops every entry. */
void vm_table_clear (vm_table_t *t);

/* vm_volume_new makes a volume around a dup of fd (one reference: the caller's). */
vm_volume_t *vm_volume_new (int fd, const char *name, uint16_t name_len);
void vm_volume_ref (vm_volume_t *v);
void vm_volume_unref (vm_volume_t *v);
/* vm_volume_rename replaces the name (the caller holds the journal paused). */
int vm_volume_rename (vm_volume_t *v, const char *name, uint16_t name_len);
/* vm_volume_version is the highest bucket version over [offset, offset + length). */
uint64_t vm_volume_version (vm_volume_t *v, uint32_t shift, uint64_t offset, uint64_t length);
/* vm_volume_stamp stores seq in the buckets of [offset, offset + length). */
void vm_volume_stamp (vm_volume_t *v, uint32_t shift, uint64_t offset, uint64_t length, uint64_t seq);

#endif
