/*
 * record.h: the C side of the journal record format (lib/core/record.ts is
 * the definition; test/unit/native-record.test.ts pins these bytes to the
 * TypeScript encoder's). Only what the write hot path needs: the header of a
 * write or zero record and the all-zero test.
 */
#ifndef VOLMIRROR_RECORD_H
#define VOLMIRROR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define VM_RECORD_VERSION 1
#define VM_OP_WRITE 1
#define VM_OP_ZERO 2
#define VM_HEADER_SIZE 44
#define VM_CRC_SIZE 4
/* Longest volume name the native path journals (FUSE paths are shorter). */
#define VM_NAME_MAX 4096

/* vm_encode_head writes the header and name of a write/zero record; returns its size. */
size_t vm_encode_head (uint8_t *out, uint8_t op, uint64_t seq, uint64_t ts, uint64_t offset,
                       uint64_t length, const char *name, uint16_t name_len);

/* vm_all_zero tells whether len bytes are all zero (stops at the first that is not). */
int vm_all_zero (const char *buf, size_t len);

/* vm_put_u32 writes v big-endian. */
void vm_put_u32 (uint8_t *p, uint32_t v);

#endif
