/*
 * dr.h: what a DR's native reads need: which regions are present, and a
 * readers-writer lock that keeps them from overlapping a group apply.
 *
 * JavaScript owns presence (lib/core/replica.ts) and mirrors every change
 * here (per DR volume id, one bit per region). Bits are set and cleared
 * with atomic byte operations; the bitmaps themselves are only reallocated
 * under the write side of `apply`, which native readers hold shared for the
 * check and the pread. JavaScript takes the write side for a whole group
 * apply (vm_dr_apply_begin/end), so a native reader sees a group whole or
 * not at all.
 */
#ifndef VOLMIRROR_DR_H
#define VOLMIRROR_DR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

typedef struct {
  uint8_t *bits;
  _Atomic uint32_t n;
  uint32_t cap_bytes;
} vm_presence_t;

typedef struct {
  pthread_rwlock_t apply;
  /* Set while the main thread holds the write side (between apply_begin and apply_end). */
  int js_holds;
  vm_presence_t **by_id;
  uint32_t n_ids;
} vm_dr_t;

void vm_dr_init (vm_dr_t *d);
void vm_dr_destroy (vm_dr_t *d);
void vm_dr_apply_begin (vm_dr_t *d);
void vm_dr_apply_end (vm_dr_t *d);
/* The calls below run on the main thread only. */
int vm_dr_resize (vm_dr_t *d, uint32_t id, uint32_t regions);
int vm_dr_set (vm_dr_t *d, uint32_t id, uint32_t from, uint32_t to, int on);
int vm_dr_load (vm_dr_t *d, uint32_t id, const uint8_t *bits, uint32_t regions);
void vm_dr_drop (vm_dr_t *d, uint32_t id);
/* vm_dr_present tells whether regions [first, last] are all present; call with `apply` held shared. */
int vm_dr_present (vm_dr_t *d, int32_t id, uint64_t first, uint64_t last);

#endif
