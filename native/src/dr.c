#include "dr.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vm_dr_init (vm_dr_t *d) {
  memset(d, 0, sizeof(*d));
  pthread_rwlockattr_t a;
  pthread_rwlockattr_init(&a);
  /* Groups keep flowing under a steady stream of readers. */
  pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&d->apply, &a);
  pthread_rwlockattr_destroy(&a);
}

void vm_dr_destroy (vm_dr_t *d) {
  for (uint32_t i = 0; i < d->n_ids; i++) {
    if (d->by_id[i]) { free(d->by_id[i]->bits); free(d->by_id[i]); }
  }
  free(d->by_id);
  d->by_id = NULL;
  d->n_ids = 0;
}

void vm_dr_apply_begin (vm_dr_t *d) {
  pthread_rwlock_wrlock(&d->apply);
  d->js_holds = 1;
}

void vm_dr_apply_end (vm_dr_t *d) {
  d->js_holds = 0;
  pthread_rwlock_unlock(&d->apply);
}

/* exclusive runs a reallocation under the write side (the main thread may already hold it). */
static void lock_x (vm_dr_t *d) { if (!d->js_holds) pthread_rwlock_wrlock(&d->apply); }
static void unlock_x (vm_dr_t *d) { if (!d->js_holds) pthread_rwlock_unlock(&d->apply); }

static vm_presence_t *get (vm_dr_t *d, uint32_t id, int create) {
  if (id < d->n_ids && d->by_id[id]) return d->by_id[id];
  if (!create) return NULL;
  vm_presence_t *p = calloc(1, sizeof(*p));
  if (p == NULL) return NULL;
  lock_x(d);
  if (id >= d->n_ids) {
    uint32_t n = d->n_ids ? d->n_ids : 64;
    while (n <= id) n *= 2;
    vm_presence_t **grown = realloc(d->by_id, n * sizeof(*grown));
    if (grown == NULL) { unlock_x(d); free(p); return NULL; }
    memset(grown + d->n_ids, 0, (n - d->n_ids) * sizeof(*grown));
    d->by_id = grown;
    d->n_ids = n;
  }
  d->by_id[id] = p;
  unlock_x(d);
  return p;
}

int vm_dr_resize (vm_dr_t *d, uint32_t id, uint32_t regions) {
  vm_presence_t *p = get(d, id, 1);
  if (p == NULL) return ENOMEM;
  uint32_t need = (regions + 7) / 8;
  if (need > p->cap_bytes) {
    uint32_t cap = p->cap_bytes ? p->cap_bytes : 64;
    while (cap < need) cap *= 2;
    uint8_t *bits = calloc(cap, 1);
    if (bits == NULL) return ENOMEM;
    lock_x(d);
    if (p->bits) memcpy(bits, p->bits, p->cap_bytes);
    free(p->bits);
    p->bits = bits;
    p->cap_bytes = cap;
    unlock_x(d);
  }
  uint32_t old = atomic_load(&p->n);
  if (regions < old) {
    /* Bits past the end are always clear, so a later growth starts absent. */
    for (uint32_t r = regions; r < old; r++) __atomic_fetch_and(&p->bits[r >> 3], (uint8_t) ~(1u << (r & 7)), __ATOMIC_RELEASE);
  }
  atomic_store(&p->n, regions);
  return 0;
}

int vm_dr_set (vm_dr_t *d, uint32_t id, uint32_t from, uint32_t to, int on) {
  vm_presence_t *p = get(d, id, 1);
  if (p == NULL) return ENOMEM;
  if (to > atomic_load(&p->n)) {
    int err = vm_dr_resize(d, id, to);
    if (err) return err;
  }
  for (uint32_t r = from; r < to; r++) {
    uint8_t mask = (uint8_t) (1u << (r & 7));
    if (on) __atomic_fetch_or(&p->bits[r >> 3], mask, __ATOMIC_RELEASE);
    else __atomic_fetch_and(&p->bits[r >> 3], (uint8_t) ~mask, __ATOMIC_RELEASE);
  }
  return 0;
}

int vm_dr_load (vm_dr_t *d, uint32_t id, const uint8_t *bits, uint32_t regions) {
  int err = vm_dr_resize(d, id, 0);
  if (!err) err = vm_dr_resize(d, id, regions);
  if (err) return err;
  vm_presence_t *p = d->by_id[id];
  for (uint32_t i = 0; i < (regions + 7) / 8; i++) {
    uint8_t b = bits[i];
    if (i == regions / 8 && (regions & 7)) b &= (uint8_t) ((1u << (regions & 7)) - 1);
    __atomic_store_n(&p->bits[i], b, __ATOMIC_RELEASE);
  }
  return 0;
}

void vm_dr_drop (vm_dr_t *d, uint32_t id) {
  if (id >= d->n_ids || d->by_id[id] == NULL) return;
  lock_x(d);
  vm_presence_t *p = d->by_id[id];
  d->by_id[id] = NULL;
  unlock_x(d);
  free(p->bits);
  free(p);
}

int vm_dr_present (vm_dr_t *d, int32_t id, uint64_t first, uint64_t last) {
  if (id < 0 || (uint32_t) id >= d->n_ids) return 0;
  vm_presence_t *p = d->by_id[id];
  if (p == NULL || last >= atomic_load(&p->n)) return 0;
  for (uint64_t r = first; r <= last; r++) {
    if ((__atomic_load_n(&p->bits[r >> 3], __ATOMIC_ACQUIRE) & (1u << (r & 7))) == 0) return 0;
  }
  return 1;
}
