#include "mount.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

vm_mount_t *vm_mount_new (int kind, uint32_t region_shift) {
  vm_mount_t *m = calloc(1, sizeof(*m));
  if (m == NULL) return NULL;
  m->kind = kind;
  m->shift = region_shift;
  vm_table_init(&m->volumes);
  vm_table_init(&m->handles);
  vm_dr_init(&m->dr);
  m->hooks.abi = VOLMIRROR_HOOKS_ABI;
  m->hooks.ctx = m;
  m->hooks.read = vm_hook_read;
  m->hooks.write = kind == VM_PRIMARY ? vm_hook_write : NULL;
  return m;
}

static int enter (vm_mount_t *m) {
  atomic_fetch_add(&m->inflight, 1);
  if (atomic_load(&m->closed)) { atomic_fetch_sub(&m->inflight, 1); return 0; }
  return 1;
}

static void leave (vm_mount_t *m) {
  atomic_fetch_sub(&m->inflight, 1);
}

int vm_mount_stop (vm_mount_t *m) {
  if (!atomic_exchange(&m->closed, 1) && m->journal_on) vm_journal_close(&m->journal);
  /* Hook calls return promptly once closed (blocked writers fail with EIO); wait at most 5 s. */
  struct timespec t0, now, tick = { 0, 500000 };
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    int left = atomic_load(&m->inflight);
    if (left == 0) return 0;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > 5000) return left;
    nanosleep(&tick, NULL);
  }
}

void vm_mount_free (vm_mount_t *m) {
  vm_mount_stop(m);
  vm_table_clear(&m->handles);
  vm_table_clear(&m->volumes);
  if (m->journal_on) { m->journal_on = 0; vm_journal_destroy(&m->journal); }
  vm_dr_destroy(&m->dr);
}

static int pread_full (int fd, char *buf, size_t len, off_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, off + (off_t) done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (n == 0) break;
    done += (size_t) n;
  }
  return (int) done;
}

/* dr_read serves a read whose regions are all present, never during a group apply. */
static int dr_read (vm_mount_t *m, vm_volume_t *v, char *buf, size_t len, off_t off) {
  int32_t id = atomic_load(&v->vol_id);
  if (id < 0) return VOLMIRROR_PASS;
  pthread_rwlock_rdlock(&m->dr.apply);
  struct stat st;
  int res;
  if (fstat(v->fd, &st) != 0) {
    res = -errno;
  } else if (off >= st.st_size) {
    res = 0;
  } else {
    size_t n = (uint64_t) (st.st_size - off) < len ? (size_t) (st.st_size - off) : len;
    uint64_t first = (uint64_t) off >> m->shift;
    uint64_t last = ((uint64_t) off + n - 1) >> m->shift;
    res = vm_dr_present(&m->dr, id, first, last) ? pread_full(v->fd, buf, n, off) : VOLMIRROR_PASS;
    if (res > 0) atomic_store_explicit(&v->read_end, (uint64_t) off + (uint64_t) res, memory_order_relaxed);
  }
  pthread_rwlock_unlock(&m->dr.apply);
  return res;
}

int vm_hook_read (void *ctx, const char *path, uint64_t fh, char *buf, size_t len, off_t offset) {
  (void) path;
  vm_mount_t *m = ctx;
  if (!enter(m)) return VOLMIRROR_PASS;
  vm_volume_t *v = vm_table_get(&m->handles, fh);
  int res = VOLMIRROR_PASS;
  if (v != NULL && !atomic_load(&v->gone)) {
    res = m->kind == VM_PRIMARY ? pread_full(v->fd, buf, len, offset) : dr_read(m, v, buf, len, offset);
  }
  if (v != NULL) vm_volume_unref(v);
  if (res == VOLMIRROR_PASS) {
    atomic_fetch_add_explicit(&m->stats.passed_reads, 1, memory_order_relaxed);
  } else {
    atomic_fetch_add_explicit(&m->stats.reads, 1, memory_order_relaxed);
    if (res > 0) atomic_fetch_add_explicit(&m->stats.read_bytes, (uint64_t) res, memory_order_relaxed);
  }
  leave(m);
  return res;
}

int vm_hook_write (void *ctx, const char *path, uint64_t fh, const char *buf, size_t len, off_t offset) {
  (void) path;
  vm_mount_t *m = ctx;
  if (!enter(m)) return VOLMIRROR_PASS;
  int res = VOLMIRROR_PASS;
  if (m->journal_on && offset >= 0) {
    vm_volume_t *v = vm_table_get(&m->handles, fh);
    if (v != NULL) {
      res = vm_journal_write(&m->journal, v, buf, len, (uint64_t) offset);
      vm_volume_unref(v);
    }
  }
  if (res == VOLMIRROR_PASS) atomic_fetch_add_explicit(&m->stats.passed_writes, 1, memory_order_relaxed);
  leave(m);
  return res;
}
