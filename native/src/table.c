#include "table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void vm_table_init (vm_table_t *t) {
  memset(t, 0, sizeof(*t));
  pthread_rwlock_init(&t->lock, NULL);
  t->next = 1;
}

static vm_volume_t **cell (vm_table_t *t, uint64_t id) {
  uint64_t page = id / VM_TABLE_PAGE;
  if (page >= VM_TABLE_PAGES || t->pages[page] == NULL) return NULL;
  return &t->pages[page][id % VM_TABLE_PAGE];
}

uint32_t vm_table_put (vm_table_t *t, vm_volume_t *v) {
  pthread_rwlock_wrlock(&t->lock);
  uint32_t id;
  int reused = t->nfree > 0;
  if (reused) {
    id = t->free_ids[--t->nfree];
  } else if (t->next < (uint64_t) VM_TABLE_PAGE * VM_TABLE_PAGES) {
    id = t->next++;
  } else {
    pthread_rwlock_unlock(&t->lock);
    return 0;
  }
  uint32_t page = id / VM_TABLE_PAGE;
  if (t->pages[page] == NULL) {
    t->pages[page] = calloc(VM_TABLE_PAGE, sizeof(vm_volume_t *));
    if (t->pages[page] == NULL) {
      if (reused) t->nfree++; else t->next--;
      pthread_rwlock_unlock(&t->lock);
      return 0;
    }
  }
  vm_volume_ref(v);
  t->pages[page][id % VM_TABLE_PAGE] = v;
  t->count++;
  pthread_rwlock_unlock(&t->lock);
  return id;
}

vm_volume_t *vm_table_get (vm_table_t *t, uint64_t id) {
  pthread_rwlock_rdlock(&t->lock);
  vm_volume_t **c = cell(t, id);
  vm_volume_t *v = c ? *c : NULL;
  if (v) vm_volume_ref(v);
  pthread_rwlock_unlock(&t->lock);
  return v;
}

int vm_table_remove (vm_table_t *t, uint32_t id) {
  pthread_rwlock_wrlock(&t->lock);
  vm_volume_t **c = cell(t, id);
  vm_volume_t *v = c ? *c : NULL;
  if (v) {
    *c = NULL;
    t->count--;
    if (t->nfree == t->capfree) {
      uint32_t cap = t->capfree ? t->capfree * 2 : 64;
      uint32_t *ids = realloc(t->free_ids, cap * sizeof(uint32_t));
      if (ids) { t->free_ids = ids; t->capfree = cap; }
    }
    if (t->nfree < t->capfree) t->free_ids[t->nfree++] = id; /* else the id is never reused */
  }
  pthread_rwlock_unlock(&t->lock);
  if (v) vm_volume_unref(v);
  return v != NULL;
}

void vm_table_each (vm_table_t *t, void (*fn)(vm_volume_t *, void *), void *arg) {
  pthread_rwlock_rdlock(&t->lock);
  for (uint32_t p = 0; p < VM_TABLE_PAGES; p++) {
    if (t->pages[p] == NULL) continue;
    for (uint32_t i = 0; i < VM_TABLE_PAGE; i++) if (t->pages[p][i]) fn(t->pages[p][i], arg);
  }
  pthread_rwlock_unlock(&t->lock);
}

void vm_table_clear (vm_table_t *t) {
  pthread_rwlock_wrlock(&t->lock);
  for (uint32_t p = 0; p < VM_TABLE_PAGES; p++) {
    if (t->pages[p] == NULL) continue;
    for (uint32_t i = 0; i < VM_TABLE_PAGE; i++) {
      vm_volume_t *v = t->pages[p][i];
      t->pages[p][i] = NULL;
      if (v) vm_volume_unref(v);
    }
  }
  t->count = 0;
  pthread_rwlock_unlock(&t->lock);
}

vm_volume_t *vm_volume_new (int fd, const char *name, uint16_t name_len) {
  vm_volume_t *v = calloc(1, sizeof(*v));
  if (v == NULL) return NULL;
  v->fd = dup(fd);
  if (v->fd < 0) { free(v); return NULL; }
  atomic_init(&v->refs, 1);
  atomic_init(&v->vol_id, -1);
  if (vm_volume_rename(v, name, name_len) != 0) { close(v->fd); free(v); return NULL; }
  return v;
}

void vm_volume_ref (vm_volume_t *v) {
  atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void vm_volume_unref (vm_volume_t *v) {
  if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
  close(v->fd);
  free(v->name);
  free(v);
}

int vm_volume_rename (vm_volume_t *v, const char *name, uint16_t name_len) {
  char *copy = malloc((size_t) name_len + 1);
  if (copy == NULL) return ENOMEM;
  memcpy(copy, name, name_len);
  copy[name_len] = 0;
  free(v->name);
  v->name = copy;
  v->name_len = name_len;
  return 0;
}

uint64_t vm_volume_version (vm_volume_t *v, uint32_t shift, uint64_t offset, uint64_t length) {
  uint64_t first = offset >> shift;
  uint64_t last = (offset + (length ? length : 1) - 1) >> shift;
  uint64_t n = last - first + 1;
  if (n > VM_VERSION_BUCKETS) { first = 0; n = VM_VERSION_BUCKETS; }
  uint64_t max = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t x = atomic_load(&v->versions[(first + i) % VM_VERSION_BUCKETS]);
    if (x > max) max = x;
  }
  return max;
}

void vm_volume_stamp (vm_volume_t *v, uint32_t shift, uint64_t offset, uint64_t length, uint64_t seq) {
  uint64_t first = offset >> shift;
  uint64_t last = (offset + (length ? length : 1) - 1) >> shift;
  uint64_t n = last - first + 1;
  if (n > VM_VERSION_BUCKETS) { first = 0; n = VM_VERSION_BUCKETS; }
  for (uint64_t i = 0; i < n; i++) atomic_store(&v->versions[(first + i) % VM_VERSION_BUCKETS], seq);
}
