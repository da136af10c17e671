#include "record.h"

#include <string.h>

void vm_put_u32 (uint8_t *p, uint32_t v) {
  p[0] = (uint8_t) (v >> 24);
  p[1] = (uint8_t) (v >> 16);
  p[2] = (uint8_t) (v >> 8);
  p[3] = (uint8_t) v;
}

static void put_u64 (uint8_t *p, uint64_t v) {
  vm_put_u32(p, (uint32_t) (v >> 32));
  vm_put_u32(p + 4, (uint32_t) v);
}

size_t vm_encode_head (uint8_t *out, uint8_t op, uint64_t seq, uint64_t ts, uint64_t offset,
                       uint64_t length, const char *name, uint16_t name_len) {
  out[0] = VM_RECORD_VERSION;
  out[1] = op;
  out[2] = 0; /* flags */
  out[3] = 0;
  put_u64(out + 4, seq);
  put_u64(out + 12, ts);
  put_u64(out + 20, offset);
  put_u64(out + 28, length);
  vm_put_u32(out + 36, 0); /* mode */
  out[40] = (uint8_t) (name_len >> 8);
  out[41] = (uint8_t) name_len;
  out[42] = 0; /* no target */
  out[43] = 0;
  memcpy(out + VM_HEADER_SIZE, name, name_len);
  return VM_HEADER_SIZE + name_len;
}

int vm_all_zero (const char *buf, size_t len) {
  size_t i = 0;
  /* The first word decides for almost every buffer that is not all zeros. */
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, buf + i, 8);
    if (w != 0) return 0;
  }
  for (; i < len; i++) if (buf[i] != 0) return 0;
  return 1;
}
