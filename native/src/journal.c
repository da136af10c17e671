#ifndef _FILE_OFFSET_BITS
#define _FILE_OFFSET_BITS 64
#endif
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "fuse-hooks.h"
#include "record.h"

static uint64_t now_ns (void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t) t.tv_sec * 1000000000u + (uint64_t) t.tv_nsec;
}

static uint64_t now_ms (void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (uint64_t) t.tv_sec * 1000u + (uint64_t) t.tv_nsec / 1000000u;
}

int vm_journal_init (vm_journal_t *j, const vm_journal_config_t *cfg) {
  memset(j, 0, sizeof(*j));
  j->ring = calloc(cfg->ring_capacity, sizeof(vm_entry_t));
  j->dir = strdup(cfg->dir);
  if (j->ring == NULL || j->dir == NULL) { free(j->ring); free(j->dir); return ENOMEM; }
  j->seg_fd = cfg->seg_fd >= 0 ? dup(cfg->seg_fd) : -1;
  if (cfg->seg_fd >= 0 && j->seg_fd < 0) { free(j->ring); free(j->dir); return errno; }
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  j->cap = cfg->ring_capacity;
  j->shift = cfg->region_shift;
  j->last_seq = cfg->last_seq;
  j->seg_size = cfg->segment_size;
  j->seg_no = cfg->seg_no;
  j->seg_off = cfg->seg_off;
  j->next_no = cfg->next_no;
  j->spare_fd = -1;
  j->need_spare = 1;
  atomic_init(&j->wake_pending, 0);
  return 0;
}

void vm_journal_destroy (vm_journal_t *j) {
  if (j->seg_fd >= 0) close(j->seg_fd);
  if (j->spare_fd >= 0) close(j->spare_fd);
  free(j->spare_path);
  free(j->ring);
  free(j->dir);
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
}

static void wake_js (vm_journal_t *j) {
  if (j->wake && !atomic_exchange(&j->wake_pending, 1)) j->wake(j->wake_arg);
}

/* Called with mu held: the spare becomes the current segment, under its segment name. */
static int rotate (vm_journal_t *j) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof(path), "%s/seg-%08u.log", j->dir, j->next_no) >= (int) sizeof(path)) return ENAMETOOLONG;
  if (rename(j->spare_path, path) != 0) return errno;
  if (j->seg_fd >= 0) close(j->seg_fd);
  j->seg_fd = j->spare_fd;
  j->seg_no = j->next_no++;
  j->seg_off = 0;
  j->spare_fd = -1;
  free(j->spare_path);
  j->spare_path = NULL;
  j->need_spare = 1;
  j->stats.rotations++;
  return 0;
}

static int pwritev_full (int fd, struct iovec *iov, int n, uint64_t off) {
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, (off_t) off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    off += (uint64_t) w;
    while (n > 0 && (size_t) w >= iov->iov_len) { w -= (ssize_t) iov->iov_len; iov++; n--; }
    if (n > 0) { iov->iov_base = (char *) iov->iov_base + w; iov->iov_len -= (size_t) w; }
  }
  return 0;
}

static int pwrite_full (int fd, const char *buf, size_t len, uint64_t off) {
  while (len > 0) {
    ssize_t w = pwrite(fd, buf, len, (off_t) off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    buf += w;
    len -= (size_t) w;
    off += (uint64_t) w;
  }
  return 0;
}

int vm_journal_write (vm_journal_t *j, vm_volume_t *v, const char *buf, size_t len, uint64_t offset) {
  if (len == 0) return 0;
  if (len > INT_MAX) return -EINVAL;
  /* Outside the lock: the zero test and the payload's CRC (combined with the head's inside). */
  int zero = vm_all_zero(buf, len);
  uLong payload_crc = zero ? 0 : crc32_z(0, (const Bytef *) buf, len);
  uint8_t head[VM_HEADER_SIZE + VM_NAME_MAX];
  uint8_t tail[VM_CRC_SIZE];

  uint64_t t0 = now_ns();
  pthread_mutex_lock(&j->mu);
  for (;;) {
    if (j->closed) { pthread_mutex_unlock(&j->mu); return -EIO; }
    if (atomic_load(&v->gone) || v->name_len > VM_NAME_MAX) { pthread_mutex_unlock(&j->mu); return VOLMIRROR_PASS; }
    if (j->paused > 0) { j->stats.waits_paused++; pthread_cond_wait(&j->cv, &j->mu); continue; }
    if (j->count == j->cap) {
      j->stats.waits_full++;
      pthread_mutex_unlock(&j->mu);
      wake_js(j);
      pthread_mutex_lock(&j->mu);
      if (j->count == j->cap && !j->closed) pthread_cond_wait(&j->cv, &j->mu);
      continue;
    }
    uint64_t size = VM_HEADER_SIZE + v->name_len + (zero ? 0 : len) + VM_CRC_SIZE;
    if (size > j->seg_size) { pthread_mutex_unlock(&j->mu); return -EFBIG; }
    if (j->seg_fd < 0 || j->seg_off + size > j->seg_size) {
      if (j->spare_fd < 0) {
        j->stats.waits_spare++;
        pthread_mutex_unlock(&j->mu);
        wake_js(j);
        pthread_mutex_lock(&j->mu);
        if (j->spare_fd < 0 && !j->closed) pthread_cond_wait(&j->cv, &j->mu);
        continue;
      }
      int err = rotate(j);
      if (err) { pthread_mutex_unlock(&j->mu); return -err; }
    }
    break;
  }
  uint64_t t1 = now_ns();

  uint64_t seq = j->last_seq + 1;
  uint64_t ts = now_ms();
  uint8_t op = zero ? VM_OP_ZERO : VM_OP_WRITE;
  size_t hlen = vm_encode_head(head, op, seq, ts, offset, len, v->name, v->name_len);
  uLong crc = crc32_z(0, head, hlen);
  if (!zero) crc = crc32_combine64(crc, payload_crc, (z_off64_t) len);
  vm_put_u32(tail, (uint32_t) crc);
  struct iovec iov[3] = { { head, hlen }, { (void *) buf, len }, { tail, VM_CRC_SIZE } };
  if (zero) iov[1] = iov[2];
  uint32_t size = (uint32_t) (hlen + (zero ? 0 : len) + VM_CRC_SIZE);
  int err = pwritev_full(j->seg_fd, iov, zero ? 2 : 3, j->seg_off);
  if (err) { pthread_mutex_unlock(&j->mu); return -err; } /* not journaled: the seq is not used */

  vm_entry_t *e = &j->ring[(j->head + j->count) % j->cap];
  e->seq = seq;
  e->ts = ts;
  e->offset = offset;
  e->length = len;
  e->slot = v->slot;
  e->segment = j->seg_no;
  e->seg_offset = (uint32_t) j->seg_off;
  e->size = size;
  e->op = op;
  j->seg_off += size;
  j->last_seq = seq;
  /* The seqlock: versions move before the image does. */
  vm_volume_stamp(v, j->shift, offset, len, seq);
  /* The primary writes zeros as zeros (the DR punches them). */
  e->err = pwrite_full(v->fd, buf, len, offset);
  atomic_store(&v->dirty, 1);
  j->count++;
  j->stats.writes++;
  j->stats.write_bytes += len;
  if (zero) j->stats.zero_writes++;
  uint64_t t2 = now_ns();
  j->stats.wait_ns += t1 - t0;
  j->stats.hold_ns += t2 - t1;
  if (t2 - t1 > j->stats.max_hold_ns) j->stats.max_hold_ns = t2 - t1;
  int res = e->err ? -e->err : (int) len;
  pthread_mutex_unlock(&j->mu);
  wake_js(j);
  return res;
}

int vm_journal_append (vm_journal_t *j, uint64_t seq, const struct iovec *iov, int iovcnt, uint32_t size,
                       uint32_t *segment, uint32_t *seg_offset) {
  if (iovcnt > 16) return EINVAL;
  pthread_mutex_lock(&j->mu);
  int err = 0;
  if (j->closed) err = EIO;
  else if (j->paused == 0 || seq != j->last_seq + 1) err = EINVAL;
  else if (size > j->seg_size) err = EFBIG;
  else if (j->seg_fd < 0 || j->seg_off + size > j->seg_size) err = j->spare_fd < 0 ? EAGAIN : rotate(j);
  if (!err) {
    struct iovec copy[16];
    memcpy(copy, iov, sizeof(struct iovec) * (size_t) iovcnt);
    err = pwritev_full(j->seg_fd, copy, iovcnt, j->seg_off);
  }
  if (!err) {
    *segment = j->seg_no;
    *seg_offset = (uint32_t) j->seg_off;
    j->seg_off += size;
    j->last_seq = seq;
  }
  pthread_mutex_unlock(&j->mu);
  return err;
}

void vm_journal_pause (vm_journal_t *j) {
  /* Taking mu waits for a writer inside its critical section. */
  pthread_mutex_lock(&j->mu);
  j->paused++;
  pthread_mutex_unlock(&j->mu);
}

void vm_journal_resume (vm_journal_t *j) {
  pthread_mutex_lock(&j->mu);
  if (j->paused > 0 && --j->paused == 0) pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

uint32_t vm_journal_drain (vm_journal_t *j, vm_entry_t *out, uint32_t max) {
  /* Before taking mu: a write after this point wakes JavaScript again. */
  atomic_store(&j->wake_pending, 0);
  pthread_mutex_lock(&j->mu);
  uint32_t n = j->count < max ? j->count : max;
  for (uint32_t i = 0; i < n; i++) out[i] = j->ring[(j->head + i) % j->cap];
  int was_full = j->count == j->cap;
  j->head = (j->head + n) % j->cap;
  j->count -= n;
  if (was_full && n > 0) pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return n;
}

int vm_journal_set_spare (vm_journal_t *j, int fd, const char *path) {
  int copy = dup(fd);
  if (copy < 0) return errno;
  char *p = strdup(path);
  if (p == NULL) { close(copy); return ENOMEM; }
  pthread_mutex_lock(&j->mu);
  if (j->spare_fd >= 0) close(j->spare_fd);
  free(j->spare_path);
  j->spare_fd = copy;
  j->spare_path = p;
  j->need_spare = 0;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return 0;
}

void vm_journal_close (vm_journal_t *j) {
  pthread_mutex_lock(&j->mu);
  j->closed = 1;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
}

void vm_journal_state (vm_journal_t *j, vm_journal_state_t *out) {
  pthread_mutex_lock(&j->mu);
  out->last_seq = j->last_seq;
  out->seg_no = j->seg_no;
  out->seg_off = j->seg_off;
  out->next_no = j->next_no;
  out->need_spare = j->spare_fd < 0;
  out->pending = j->count;
  out->stats = j->stats;
  pthread_mutex_unlock(&j->mu);
}
