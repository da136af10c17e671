/*
 * journal.h: the primary's write critical section (DESIGN "Primary write
 * path"), run on libfuse's worker threads.
 *
 * One mutex (mu) orders every mutation of every volume: inside it a write
 * takes the next seq, appends its record to the current journal segment,
 * stamps the seqlock versions of its regions, writes the image, and pushes
 * an entry for JavaScript onto a bounded ring. So seqs are contiguous and
 * image order is journal order. Waits (ring full, no spare segment, paused
 * by JavaScript) are on cv with mu released.
 *
 * JavaScript drains the ring (on a coalesced uv_async wake-up or when it
 * needs to be up to date), indexes the entries in LevelDB and ships them.
 * It pauses the writers around everything it does to the journal or the
 * images itself (namespace operations, truncates, checkpoints that need a
 * fixed point), and hands over a spare segment file each time the writers
 * rotate into the last one. Segment files stay JavaScript's; the journal
 * holds dups of the two descriptors it writes to.
 */
#ifndef VOLMIRROR_JOURNAL_H
#define VOLMIRROR_JOURNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#include "table.h"

/* vm_entry_t is one appended record as JavaScript reads it (little-endian, 56 bytes). */
typedef struct {
  uint64_t seq;
  uint64_t ts;
  uint64_t offset;
  uint64_t length;
  uint32_t slot;
  uint32_t segment;
  uint32_t seg_offset;
  uint32_t size;
  /* errno of a failed image write: the record is journaled, not applied. */
  int32_t err;
  uint8_t op;
  uint8_t pad[3];
} vm_entry_t;

typedef struct {
  const char *dir;
  uint64_t segment_size;
  uint32_t seg_no;
  int seg_fd;
  uint64_t seg_off;
  uint32_t next_no;
  uint64_t last_seq;
  uint32_t ring_capacity;
  uint32_t region_shift;
} vm_journal_config_t;

typedef struct {
  uint64_t writes, write_bytes, zero_writes, rotations;
  uint64_t waits_full, waits_spare, waits_paused;
  uint64_t hold_ns, max_hold_ns, wait_ns;
} vm_journal_stats_t;

typedef struct vm_journal {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t shift;
  uint64_t last_seq;
  int paused;
  int closed;
  char *dir;
  uint64_t seg_size;
  uint32_t seg_no;
  int seg_fd;
  uint64_t seg_off;
  uint32_t next_no;
  int spare_fd;
  char *spare_path;
  int need_spare;
  vm_entry_t *ring;
  uint32_t cap, head, count;
  vm_journal_stats_t stats;
  /* Called (outside mu) when JavaScript should drain; coalesced by wake_pending. */
  void (*wake)(void *arg);
  void *wake_arg;
  atomic_int wake_pending;
} vm_journal_t;

int vm_journal_init (vm_journal_t *j, const vm_journal_config_t *cfg);
void vm_journal_destroy (vm_journal_t *j);

/* vm_journal_write journals and applies one write from a FUSE thread: bytes, -errno or VOLMIRROR_PASS. */
int vm_journal_write (vm_journal_t *j, vm_volume_t *v, const char *buf, size_t len, uint64_t offset);

/*
 * vm_journal_append appends JavaScript's own encoded record (seq must be
 * last_seq + 1) while JavaScript holds the writers paused. EAGAIN: it needs
 * a spare segment first.
 */
int vm_journal_append (vm_journal_t *j, uint64_t seq, const struct iovec *iov, int iovcnt, uint32_t size,
                       uint32_t *segment, uint32_t *seg_offset);

void vm_journal_pause (vm_journal_t *j);
void vm_journal_resume (vm_journal_t *j);
/* vm_journal_drain moves up to max entries to out; returns how many. */
uint32_t vm_journal_drain (vm_journal_t *j, vm_entry_t *out, uint32_t max);
/* vm_journal_set_spare hands over the next segment file (a dup of fd is kept). */
int vm_journal_set_spare (vm_journal_t *j, int fd, const char *path);
/* vm_journal_close wakes every waiting writer (they fail with EIO) and refuses new ones. */
void vm_journal_close (vm_journal_t *j);

typedef struct {
  uint64_t last_seq;
  uint32_t seg_no;
  uint64_t seg_off;
  uint32_t next_no;
  int need_spare;
  uint32_t pending;
  vm_journal_stats_t stats;
} vm_journal_state_t;

void vm_journal_state (vm_journal_t *j, vm_journal_state_t *out);

#endif
