/**
 * wire: names both ends of the HTTP edge must agree on (headers, content
 * types), kept apart so the client does not import the server.
 */

/** GROUP_FRAME_TYPE is the content type of a group frame reply. */
export const GROUP_FRAME_TYPE = 'application/vnd.volmirror.group-frame'
/** H_AS_OF carries the asOf of the bytes in a volume or region reply. */
export const H_AS_OF = 'x-volmirror-as-of'
/** H_SIZE is the volume's size when a region was read. */
export const H_SIZE = 'x-volmirror-size'
/** H_REGION_START and H_REGION_END bound a region reply ([start, end) in the volume). */
export const H_REGION_START = 'x-volmirror-region-start'
export const H_REGION_END = 'x-volmirror-region-end'
/** H_FIRST is the offset the region body starts at (the body wraps around to the region's start). */
export const H_FIRST = 'x-volmirror-first'
/** H_CRC32 is the CRC-32 of a region body's bytes in body order: a trailer, checked by the DR once all arrived. */
export const H_CRC32 = 'x-volmirror-crc32'
/** H_ERROR is a trailer ending a region body early with an error code (REGION_CHANGED: fetch it again). */
export const H_ERROR = 'x-volmirror-error'

/** H_BIRTH is the name's birth when the bytes were read: which volume the name meant (lib/primary/name-births.ts). */
export const H_BIRTH = 'x-volmirror-birth'
