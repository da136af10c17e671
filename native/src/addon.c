/*
 * addon.c: the N-API face of the native data path (lib/fuse/native-path.ts
 * is its TypeScript face). Everything here runs on the main thread; the
 * FUSE threads only ever run the hooks (mount.c) and the journal's writer
 * (journal.c), and reach JavaScript through one coalesced uv_async.
 * Arguments are checked by the TypeScript face; here they are only read.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <node_api.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "mount.h"
#include "record.h"

#define CALL(env, call) do { if ((call) != napi_ok) { throw_last(env); return NULL; } } while (0)

static void throw_last (napi_env env) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, "NATIVE_ARGUMENT", info && info->error_message ? info->error_message : "N-API call failed");
}

static napi_value throw_errno (napi_env env, int err, const char *what) {
  char msg[256];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  const char *code = err == ENOSPC ? "ENOSPC" : err == EAGAIN ? "EAGAIN" : err == EFBIG ? "EFBIG" : err == ENOMEM ? "ENOMEM" : "NATIVE_IO";
  napi_throw_error(env, code, msg);
  return NULL;
}

typedef struct {
  napi_value argv[12];
  size_t argc;
} args_t;

static int get_args (napi_env env, napi_callback_info info, args_t *a, size_t want) {
  a->argc = 12;
  if (napi_get_cb_info(env, info, &a->argc, a->argv, NULL, NULL) != napi_ok || a->argc < want) {
    napi_throw_error(env, "NATIVE_ARGUMENT", "missing arguments");
    return 0;
  }
  return 1;
}

static vm_mount_t *mount_arg (napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_error(env, "NATIVE_ARGUMENT", "not a native mount");
    return NULL;
  }
  return p;
}

static double num (napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

static napi_value make_num (napi_env env, double d) {
  napi_value out;
  napi_create_double(env, d, &out);
  return out;
}

static napi_value undef (napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* utf8 reads a string argument into buf (at most cap - 1 bytes); returns its length or -1. */
static long utf8 (napi_env env, napi_value v, char *buf, size_t cap) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len >= cap) return -1;
  napi_get_value_string_utf8(env, v, buf, cap, &len);
  return (long) len;
}

/* --- wake-ups from FUSE threads ------------------------------------------ */

typedef struct {
  uv_async_t async;
  napi_env env;
  napi_ref fn;
} waker_t;

static void on_async (uv_async_t *h) {
  waker_t *w = h->data;
  napi_handle_scope scope;
  napi_open_handle_scope(w->env, &scope);
  napi_value fn, global;
  if (napi_get_reference_value(w->env, w->fn, &fn) == napi_ok && fn != NULL) {
    napi_get_global(w->env, &global);
    napi_make_callback(w->env, NULL, global, fn, 0, NULL, NULL);
  }
  napi_close_handle_scope(w->env, scope);
}

static void send_wake (void *arg) {
  uv_async_send(&((waker_t *) arg)->async);
}

static void waker_closed (uv_handle_t *h) {
  free(h->data);
}

/* --- mounts and volumes ---------------------------------------------------- */

static napi_value create (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  int kind = (int) num(env, a.argv[0]);
  uint64_t region = (uint64_t) num(env, a.argv[1]);
  uint32_t shift = 0;
  while (((uint64_t) 1 << shift) < region) shift++;
  vm_mount_t *m = vm_mount_new(kind == VM_DR ? VM_DR : VM_PRIMARY, shift);
  if (m == NULL) return throw_errno(env, ENOMEM, "native mount");
  napi_value out;
  CALL(env, napi_create_external(env, m, NULL, NULL, &out));
  return out;
}

static napi_value hooks (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  napi_value out;
  CALL(env, napi_create_external(env, &m->hooks, NULL, NULL, &out));
  return out;
}

static napi_value volume_open (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  char name[VM_NAME_MAX + 1];
  long n = utf8(env, a.argv[2], name, sizeof(name));
  if (n < 0) n = 0; /* too long to journal natively: its writes go to JavaScript (gone) */
  vm_volume_t *v = vm_volume_new((int) num(env, a.argv[1]), name, (uint16_t) n);
  if (v == NULL) return throw_errno(env, errno ? errno : ENOMEM, "native volume");
  if (n == 0) atomic_store(&v->gone, 1);
  /* The slot is known only once stored; nothing reads it before the volume is bound to a handle. */
  uint32_t slot = vm_table_put(&m->volumes, v);
  v->slot = slot;
  vm_volume_unref(v);
  if (slot == 0) return throw_errno(env, ENOMEM, "native volume table");
  return make_num(env, slot);
}

static vm_volume_t *volume_arg (napi_env env, vm_mount_t *m, napi_value v) {
  vm_volume_t *vol = vm_table_get(&m->volumes, (uint64_t) num(env, v));
  if (vol == NULL) napi_throw_error(env, "NATIVE_ARGUMENT", "no such native volume");
  return vol;
}

static napi_value volume_rename (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = volume_arg(env, m, a.argv[1]);
  if (v == NULL) return NULL;
  char name[VM_NAME_MAX + 1];
  long n = utf8(env, a.argv[2], name, sizeof(name));
  int err = 0;
  if (m->journal_on) pthread_mutex_lock(&m->journal.mu);
  if (n <= 0) atomic_store(&v->gone, 1);
  else err = vm_volume_rename(v, name, (uint16_t) n);
  if (m->journal_on) pthread_mutex_unlock(&m->journal.mu);
  vm_volume_unref(v);
  if (err) return throw_errno(env, err, "rename native volume");
  return undef(env);
}

static napi_value volume_close (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = vm_table_get(&m->volumes, (uint64_t) num(env, a.argv[1]));
  if (v != NULL) {
    /* Under mu: no writer is between its gone check and its image write. */
    if (m->journal_on) pthread_mutex_lock(&m->journal.mu);
    atomic_store(&v->gone, 1);
    if (m->journal_on) pthread_mutex_unlock(&m->journal.mu);
    vm_table_remove(&m->volumes, v->slot);
    vm_volume_unref(v);
  }
  return undef(env);
}

static napi_value volume_set_id (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = volume_arg(env, m, a.argv[1]);
  if (v == NULL) return NULL;
  atomic_store(&v->vol_id, (int32_t) num(env, a.argv[2]));
  vm_volume_unref(v);
  return undef(env);
}

static napi_value volume_version (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = vm_table_get(&m->volumes, (uint64_t) num(env, a.argv[1]));
  if (v == NULL) return make_num(env, 0);
  uint64_t ver = vm_volume_version(v, m->shift, (uint64_t) num(env, a.argv[2]), (uint64_t) num(env, a.argv[3]));
  vm_volume_unref(v);
  return make_num(env, (double) ver);
}

static napi_value volume_read_end (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = vm_table_get(&m->volumes, (uint64_t) num(env, a.argv[1]));
  if (v == NULL) return make_num(env, 0);
  uint64_t end = atomic_load_explicit(&v->read_end, memory_order_relaxed);
  vm_volume_unref(v);
  return make_num(env, (double) end);
}

typedef struct { napi_env env; napi_value arr; uint32_t n; } dirty_acc_t;

static void take_dirty_one (vm_volume_t *v, void *arg) {
  dirty_acc_t *acc = arg;
  if (!atomic_exchange(&v->dirty, 0)) return;
  napi_value s;
  napi_create_uint32(acc->env, v->slot, &s);
  napi_set_element(acc->env, acc->arr, acc->n++, s);
}

static napi_value take_dirty (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  dirty_acc_t acc = { env, NULL, 0 };
  CALL(env, napi_create_array(env, &acc.arr));
  vm_table_each(&m->volumes, take_dirty_one, &acc);
  return acc.arr;
}

static napi_value handle_bind (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_volume_t *v = volume_arg(env, m, a.argv[1]);
  if (v == NULL) return NULL;
  uint32_t fh = vm_table_put(&m->handles, v);
  vm_volume_unref(v);
  if (fh == 0) return throw_errno(env, ENOMEM, "native handle table");
  return make_num(env, fh);
}

static napi_value handle_unbind (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  vm_table_remove(&m->handles, (uint32_t) num(env, a.argv[1]));
  return undef(env);
}

/* --- journal ----------------------------------------------------------- */

static napi_value journal_start (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 10)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  if (m->journal_on) { napi_throw_error(env, "NATIVE_STATE", "the native journal is already started"); return NULL; }
  char dir[4096];
  if (utf8(env, a.argv[1], dir, sizeof(dir)) < 0) { napi_throw_error(env, "NATIVE_ARGUMENT", "journal directory"); return NULL; }
  vm_journal_config_t cfg = {
    .dir = dir,
    .segment_size = (uint64_t) num(env, a.argv[2]),
    .seg_no = (uint32_t) num(env, a.argv[3]),
    .seg_fd = (int) num(env, a.argv[4]),
    .seg_off = (uint64_t) num(env, a.argv[5]),
    .next_no = (uint32_t) num(env, a.argv[6]),
    .last_seq = (uint64_t) num(env, a.argv[7]),
    .ring_capacity = (uint32_t) num(env, a.argv[8]),
    .region_shift = m->shift,
  };
  waker_t *w = calloc(1, sizeof(*w));
  if (w == NULL) return throw_errno(env, ENOMEM, "native journal");
  int err = vm_journal_init(&m->journal, &cfg);
  if (err) { free(w); return throw_errno(env, err, "native journal"); }
  uv_loop_t *loop;
  CALL(env, napi_get_uv_event_loop(env, &loop));
  w->env = env;
  napi_create_reference(env, a.argv[9], 1, &w->fn);
  uv_async_init(loop, &w->async, on_async);
  w->async.data = w;
  uv_unref((uv_handle_t *) &w->async);
  m->journal.wake = send_wake;
  m->journal.wake_arg = w;
  m->wake_arg = w;
  m->journal_on = 1;
  return undef(env);
}

static napi_value journal_set_spare (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL || !m->journal_on) return NULL;
  char path[4096];
  if (utf8(env, a.argv[2], path, sizeof(path)) < 0) { napi_throw_error(env, "NATIVE_ARGUMENT", "spare path"); return NULL; }
  int err = vm_journal_set_spare(&m->journal, (int) num(env, a.argv[1]), path);
  if (err) return throw_errno(env, err, "spare segment");
  return undef(env);
}

static napi_value journal_drain (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  if (!m->journal_on) { napi_value n; napi_get_null(env, &n); return n; }
  /* Sized by a look at the count; entries pushed meanwhile wait for the next drain. */
  pthread_mutex_lock(&m->journal.mu);
  uint32_t want = m->journal.count;
  pthread_mutex_unlock(&m->journal.mu);
  napi_value out;
  if (want == 0) {
    atomic_store(&m->journal.wake_pending, 0);
    napi_get_null(env, &out);
    return out;
  }
  void *data = NULL;
  CALL(env, napi_create_buffer(env, (size_t) want * sizeof(vm_entry_t), &data, &out));
  uint32_t n = vm_journal_drain(&m->journal, data, want);
  if (n < want) {
    /* Only a concurrent drain could take entries: not done (main thread only). */
    napi_value slice;
    napi_create_buffer_copy(env, (size_t) n * sizeof(vm_entry_t), data, NULL, &slice);
    return slice;
  }
  return out;
}

static napi_value journal_pause (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m != NULL && m->journal_on) vm_journal_pause(&m->journal);
  return undef(env);
}

static napi_value journal_resume (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m != NULL && m->journal_on) vm_journal_resume(&m->journal);
  return undef(env);
}

static napi_value journal_append (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  if (!m->journal_on) { napi_throw_error(env, "NATIVE_STATE", "the native journal is not started"); return NULL; }
  uint32_t count = 0;
  CALL(env, napi_get_array_length(env, a.argv[2], &count));
  if (count > 16) { napi_throw_error(env, "NATIVE_ARGUMENT", "too many pieces"); return NULL; }
  struct iovec iov[16];
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    CALL(env, napi_get_element(env, a.argv[2], i, &el));
    void *data = NULL;
    size_t len = 0;
    CALL(env, napi_get_typedarray_info(env, el, NULL, &len, &data, NULL, NULL));
    iov[i].iov_base = data;
    iov[i].iov_len = len;
  }
  uint32_t seg = 0, off = 0;
  int err = vm_journal_append(&m->journal, (uint64_t) num(env, a.argv[1]), iov, (int) count, (uint32_t) num(env, a.argv[3]), &seg, &off);
  if (err) return throw_errno(env, err, "append to the journal");
  napi_value out;
  CALL(env, napi_create_array_with_length(env, 2, &out));
  napi_set_element(env, out, 0, make_num(env, seg));
  napi_set_element(env, out, 1, make_num(env, off));
  return out;
}

static void set_num (napi_env env, napi_value obj, const char *key, double v) {
  napi_set_named_property(env, obj, key, make_num(env, v));
}

static napi_value journal_state (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  napi_value out;
  CALL(env, napi_create_object(env, &out));
  if (!m->journal_on) return out;
  vm_journal_state_t s;
  vm_journal_state(&m->journal, &s);
  set_num(env, out, "lastSeq", (double) s.last_seq);
  set_num(env, out, "segment", s.seg_no);
  set_num(env, out, "segmentOffset", (double) s.seg_off);
  set_num(env, out, "nextSegment", s.next_no);
  set_num(env, out, "needSpare", s.need_spare);
  set_num(env, out, "pending", s.pending);
  set_num(env, out, "writes", (double) s.stats.writes);
  set_num(env, out, "writeBytes", (double) s.stats.write_bytes);
  set_num(env, out, "zeroWrites", (double) s.stats.zero_writes);
  set_num(env, out, "rotations", (double) s.stats.rotations);
  set_num(env, out, "waitsFull", (double) s.stats.waits_full);
  set_num(env, out, "waitsSpare", (double) s.stats.waits_spare);
  set_num(env, out, "waitsPaused", (double) s.stats.waits_paused);
  set_num(env, out, "holdSeconds", (double) s.stats.hold_ns / 1e9);
  set_num(env, out, "maxHoldSeconds", (double) s.stats.max_hold_ns / 1e9);
  set_num(env, out, "waitSeconds", (double) s.stats.wait_ns / 1e9);
  return out;
}

static napi_value journal_last_seq (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL || !m->journal_on) return make_num(env, 0);
  pthread_mutex_lock(&m->journal.mu);
  uint64_t s = m->journal.last_seq;
  pthread_mutex_unlock(&m->journal.mu);
  return make_num(env, (double) s);
}

static napi_value stop_mount (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  return make_num(env, m != NULL ? vm_mount_stop(m) : 0);
}

static napi_value close_mount (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  waker_t *w = m->wake_arg;
  vm_mount_free(m);
  if (w != NULL) {
    m->wake_arg = NULL;
    napi_delete_reference(env, w->fn);
    w->fn = NULL;
    uv_close((uv_handle_t *) &w->async, waker_closed);
  }
  return undef(env);
}

static napi_value stats (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  napi_value out;
  CALL(env, napi_create_object(env, &out));
  set_num(env, out, "reads", (double) atomic_load(&m->stats.reads));
  set_num(env, out, "readBytes", (double) atomic_load(&m->stats.read_bytes));
  set_num(env, out, "passedReads", (double) atomic_load(&m->stats.passed_reads));
  set_num(env, out, "passedWrites", (double) atomic_load(&m->stats.passed_writes));
  set_num(env, out, "volumes", m->volumes.count);
  set_num(env, out, "handles", m->handles.count);
  return out;
}

/* --- DR presence -------------------------------------------------------- */

static napi_value dr_apply_begin (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m != NULL) vm_dr_apply_begin(&m->dr);
  return undef(env);
}

static napi_value dr_apply_end (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 1)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m != NULL) vm_dr_apply_end(&m->dr);
  return undef(env);
}

static napi_value dr_set (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 5)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  bool on = false;
  napi_get_value_bool(env, a.argv[4], &on);
  int err = vm_dr_set(&m->dr, (uint32_t) num(env, a.argv[1]), (uint32_t) num(env, a.argv[2]), (uint32_t) num(env, a.argv[3]), on);
  if (err) return throw_errno(env, err, "presence");
  return undef(env);
}

static napi_value dr_resize (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 3)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  int err = vm_dr_resize(&m->dr, (uint32_t) num(env, a.argv[1]), (uint32_t) num(env, a.argv[2]));
  if (err) return throw_errno(env, err, "presence");
  return undef(env);
}

static napi_value dr_load (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  void *data = NULL;
  size_t len = 0;
  CALL(env, napi_get_typedarray_info(env, a.argv[2], NULL, &len, &data, NULL, NULL));
  uint32_t regions = (uint32_t) num(env, a.argv[3]);
  if ((regions + 7) / 8 > len) { napi_throw_error(env, "NATIVE_ARGUMENT", "presence bits shorter than the regions"); return NULL; }
  int err = vm_dr_load(&m->dr, (uint32_t) num(env, a.argv[1]), data, regions);
  if (err) return throw_errno(env, err, "presence");
  return undef(env);
}

static napi_value dr_drop (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m != NULL) vm_dr_drop(&m->dr, (uint32_t) num(env, a.argv[1]));
  return undef(env);
}

/* --- test seams ----------------------------------------------------------- */

/* encodeHead(op, seq, ts, offset, length, name): the bytes the write path journals before the payload. */
static napi_value encode_head (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 6)) return NULL;
  char name[VM_NAME_MAX + 1];
  long n = utf8(env, a.argv[5], name, sizeof(name));
  if (n < 0) { napi_throw_error(env, "NATIVE_ARGUMENT", "name too long"); return NULL; }
  uint8_t head[VM_HEADER_SIZE + VM_NAME_MAX];
  size_t len = vm_encode_head(head, (uint8_t) num(env, a.argv[0]), (uint64_t) num(env, a.argv[1]), (uint64_t) num(env, a.argv[2]),
                              (uint64_t) num(env, a.argv[3]), (uint64_t) num(env, a.argv[4]), name, (uint16_t) n);
  napi_value out;
  CALL(env, napi_create_buffer_copy(env, len, head, NULL, &out));
  return out;
}

/* hookRead/hookWrite(m, fh, buf, offset): call a hook as a FUSE thread would (tests without a mount). */
static napi_value hook_call (napi_env env, napi_callback_info info, int write) {
  args_t a;
  if (!get_args(env, info, &a, 4)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  void *data = NULL;
  size_t len = 0;
  CALL(env, napi_get_typedarray_info(env, a.argv[2], NULL, &len, &data, NULL, NULL));
  uint64_t fh = (uint64_t) num(env, a.argv[1]);
  off_t off = (off_t) num(env, a.argv[3]);
  int res = write ? vm_hook_write(m, "", fh, data, len, off) : vm_hook_read(m, "", fh, data, len, off);
  napi_value out;
  napi_create_int32(env, res, &out);
  return out;
}

static napi_value hook_read (napi_env env, napi_callback_info info) { return hook_call(env, info, 0); }
static napi_value hook_write (napi_env env, napi_callback_info info) { return hook_call(env, info, 1); }

/*
 * hammer(m, fhs, threads, writesPerThread, maxLength, spanBytes, seed, done):
 * `threads` pthreads each make random writes (random handle, offset and
 * length, a byte pattern naming the writer) through the write hook, as many
 * FUSE threads would at once; done(err, failures) is called on the main thread.
 */
typedef struct {
  vm_mount_t *m;
  uint64_t *fhs;
  uint32_t nfh, threads, writes, max_len;
  uint64_t span, seed;
  atomic_int failures;
  napi_async_work work;
  napi_ref done;
} hammer_t;

typedef struct { hammer_t *h; uint32_t index; } hammer_thread_t;

static uint64_t xorshift (uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13; x ^= x >> 7; x ^= x << 17;
  return *s = x;
}

static void *hammer_thread (void *arg) {
  hammer_thread_t *t = arg;
  hammer_t *h = t->h;
  uint64_t s = h->seed * 2654435761u + t->index + 1;
  char *buf = malloc(h->max_len);
  for (uint32_t i = 0; buf != NULL && i < h->writes; i++) {
    uint64_t fh = h->fhs[xorshift(&s) % h->nfh];
    uint32_t len = 1 + (uint32_t) (xorshift(&s) % h->max_len);
    uint64_t off = xorshift(&s) % (h->span - len);
    int zero = xorshift(&s) % 8 == 0;
    for (uint32_t k = 0; k < len; k++) buf[k] = zero ? 0 : (char) (t->index * 31 + i + k % 7 + 1);
    if (vm_hook_write(h->m, "", fh, buf, len, (off_t) off) != (int) len) atomic_fetch_add(&h->failures, 1);
  }
  free(buf);
  return NULL;
}

static void hammer_execute (napi_env env, void *data) {
  (void) env;
  hammer_t *h = data;
  pthread_t *ids = calloc(h->threads, sizeof(pthread_t));
  hammer_thread_t *ts = calloc(h->threads, sizeof(hammer_thread_t));
  for (uint32_t i = 0; ids && ts && i < h->threads; i++) {
    ts[i].h = h;
    ts[i].index = i;
    pthread_create(&ids[i], NULL, hammer_thread, &ts[i]);
  }
  for (uint32_t i = 0; ids && ts && i < h->threads; i++) pthread_join(ids[i], NULL);
  free(ids);
  free(ts);
}

static void hammer_complete (napi_env env, napi_status status, void *data) {
  hammer_t *h = data;
  napi_value fn, argv[2], global;
  napi_get_reference_value(env, h->done, &fn);
  napi_get_null(env, &argv[0]);
  napi_create_int32(env, status == napi_ok ? atomic_load(&h->failures) : -1, &argv[1]);
  napi_get_global(env, &global);
  napi_call_function(env, global, fn, 2, argv, NULL);
  napi_delete_reference(env, h->done);
  napi_delete_async_work(env, h->work);
  free(h->fhs);
  free(h);
}

static napi_value hammer (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 8)) return NULL;
  vm_mount_t *m = mount_arg(env, a.argv[0]);
  if (m == NULL) return NULL;
  hammer_t *h = calloc(1, sizeof(*h));
  if (h == NULL) return throw_errno(env, ENOMEM, "hammer");
  h->m = m;
  CALL(env, napi_get_array_length(env, a.argv[1], &h->nfh));
  h->fhs = calloc(h->nfh ? h->nfh : 1, sizeof(uint64_t));
  for (uint32_t i = 0; i < h->nfh; i++) {
    napi_value el;
    napi_get_element(env, a.argv[1], i, &el);
    h->fhs[i] = (uint64_t) num(env, el);
  }
  h->threads = (uint32_t) num(env, a.argv[2]);
  h->writes = (uint32_t) num(env, a.argv[3]);
  h->max_len = (uint32_t) num(env, a.argv[4]);
  h->span = (uint64_t) num(env, a.argv[5]);
  h->seed = (uint64_t) num(env, a.argv[6]);
  napi_create_reference(env, a.argv[7], 1, &h->done);
  napi_value name;
  napi_create_string_utf8(env, "volmirror-hammer", NAPI_AUTO_LENGTH, &name);
  CALL(env, napi_create_async_work(env, NULL, name, hammer_execute, hammer_complete, h, &h->work));
  CALL(env, napi_queue_async_work(env, h->work));
  return undef(env);
}

/* --- write-behind ----------------------------------------------------------- */

/*
 * writeBehind(fds, done): start writeback of every dirty page of these files
 * (sync_file_range SYNC_FILE_RANGE_WRITE: no wait for completion, no device
 * flush), on a libuv pool thread; done(null, errors) on the main thread.
 * Keeps dirty image data from piling up until a checkpoint flushes it all at
 * once in front of the journal's fdatasyncs. The caller keeps the fds open.
 */
typedef struct {
  int *fds;
  uint32_t n;
  int errors;
  napi_async_work work;
  napi_ref done;
} behind_t;

static void behind_execute (napi_env env, void *data) {
  (void) env;
  behind_t *b = data;
  for (uint32_t i = 0; i < b->n; i++) {
    if (sync_file_range(b->fds[i], 0, 0, SYNC_FILE_RANGE_WRITE) != 0) b->errors++;
  }
}

static void behind_complete (napi_env env, napi_status status, void *data) {
  behind_t *b = data;
  napi_value fn, argv[2], global;
  napi_get_reference_value(env, b->done, &fn);
  napi_get_null(env, &argv[0]);
  napi_create_int32(env, status == napi_ok ? b->errors : -1, &argv[1]);
  napi_get_global(env, &global);
  napi_call_function(env, global, fn, 2, argv, NULL);
  napi_delete_reference(env, b->done);
  napi_delete_async_work(env, b->work);
  free(b->fds);
  free(b);
}

static napi_value write_behind (napi_env env, napi_callback_info info) {
  args_t a;
  if (!get_args(env, info, &a, 2)) return NULL;
  behind_t *b = calloc(1, sizeof(*b));
  if (b == NULL) return throw_errno(env, ENOMEM, "write-behind");
  CALL(env, napi_get_array_length(env, a.argv[0], &b->n));
  b->fds = calloc(b->n ? b->n : 1, sizeof(int));
  for (uint32_t i = 0; i < b->n; i++) {
    napi_value el;
    napi_get_element(env, a.argv[0], i, &el);
    b->fds[i] = (int) num(env, el);
  }
  napi_create_reference(env, a.argv[1], 1, &b->done);
  napi_value name;
  napi_create_string_utf8(env, "volmirror-write-behind", NAPI_AUTO_LENGTH, &name);
  CALL(env, napi_create_async_work(env, NULL, name, behind_execute, behind_complete, b, &b->work));
  CALL(env, napi_queue_async_work(env, b->work));
  return undef(env);
}

/* --- memory ----------------------------------------------------------------- */

/*
 * tuneMalloc(): keep freed buffers for reuse. By default glibc serves large
 * allocations (a group frame, a segment read, a drained ring) with a fresh
 * mmap and unmaps them when freed, so every next one takes a page fault per
 * 4 KiB touched (measured here: filling fresh 8 MiB buffers ran at 0.6 GB/s,
 * reused ones at 20 GB/s). Allocations under 32 MiB (glibc's ceiling for
 * this) now come from the heap, and the heap is trimmed only past 512 MiB of
 * free space: resident memory is the high-water mark of what was in use.
 */
static napi_value tune_malloc (napi_env env, napi_callback_info info) {
  (void) info;
  int ok = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) && mallopt(M_TRIM_THRESHOLD, 512 * 1024 * 1024);
  napi_value out;
  napi_get_boolean(env, ok, &out);
  return out;
}

/* --- exports ------------------------------------------------------------- */

static napi_value init (napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
#define FN(name, fn) { name, NULL, fn, NULL, NULL, NULL, napi_enumerable, NULL }
    FN("create", create),
    FN("hooks", hooks),
    FN("volumeOpen", volume_open),
    FN("volumeRename", volume_rename),
    FN("volumeClose", volume_close),
    FN("volumeSetId", volume_set_id),
    FN("volumeVersion", volume_version),
    FN("volumeReadEnd", volume_read_end),
    FN("takeDirty", take_dirty),
    FN("handleBind", handle_bind),
    FN("handleUnbind", handle_unbind),
    FN("journalStart", journal_start),
    FN("journalSetSpare", journal_set_spare),
    FN("journalDrain", journal_drain),
    FN("journalPause", journal_pause),
    FN("journalResume", journal_resume),
    FN("journalAppend", journal_append),
    FN("journalState", journal_state),
    FN("journalLastSeq", journal_last_seq),
    FN("stop", stop_mount),
    FN("close", close_mount),
    FN("stats", stats),
    FN("drApplyBegin", dr_apply_begin),
    FN("drApplyEnd", dr_apply_end),
    FN("drSet", dr_set),
    FN("drResize", dr_resize),
    FN("drLoad", dr_load),
    FN("drDrop", dr_drop),
    FN("encodeHead", encode_head),
    FN("hookRead", hook_read),
    FN("hookWrite", hook_write),
    FN("hammer", hammer),
    FN("writeBehind", write_behind),
    FN("tuneMalloc", tune_malloc),
#undef FN
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value abi, entry;
  napi_create_uint32(env, VOLMIRROR_HOOKS_ABI, &abi);
  napi_set_named_property(env, exports, "hooksAbi", abi);
  napi_create_uint32(env, (uint32_t) sizeof(vm_entry_t), &entry);
  napi_set_named_property(env, exports, "entrySize", entry);
  napi_value pass;
  napi_create_int32(env, VOLMIRROR_PASS, &pass);
  napi_set_named_property(env, exports, "PASS", pass);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
