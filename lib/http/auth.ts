/**
 * auth: the shared secret that lets a DR talk to its primary.
 *
 * One token per primary, in a file only the node's user may read (like an
 * SSH private key: a token file readable by group or others is refused,
 * not silently used). Peers send it as `Authorization: Bearer <token>`.
 * Tokens are compared in constant time over their SHA-256 digests, so
 * neither the contents nor the length of the expected token leak through
 * timing. No function here logs, and no error message contains a token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import fs from 'node:fs/promises'
import { fromSystemError, VolmirrorError } from '../errors.js'

/** TOKEN_BYTES is the entropy of a generated token (base64url: 43 characters). */
export const TOKEN_BYTES = 32
const MIN_TOKEN_CHARS = 16
const TOKEN_SHAPE = /^[A-Za-z0-9._~+/=-]+$/

/** generateToken returns a fresh random token. */
export function generateToken (): string {
  return randomBytes(TOKEN_BYTES).toString('base64url')
}

/**
 * ensureToken returns the token in `file`, first creating the file (mode
 * 0600, a fresh token) if it does not exist. An existing file is read with
 * {@link readToken}'s checks.
 */
export async function ensureToken (file: string): Promise<string> {
  const token = generateToken()
  let fh: fs.FileHandle | undefined
  try {
    fh = await fs.open(file, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return await readToken(file)
    throw fromSystemError(err, `create token file ${file}`)
  }
  try {
    await fh.chmod(0o600) // the umask may have narrowed it; never widened, but be explicit
    await fh.writeFile(token + '\n')
    await fh.sync()
  } catch (err) {
    throw fromSystemError(err, `write token file ${file}`)
  } finally {
    await fh.close()
  }
  return token
}

/**
 * readToken reads the token in `file`. Fails with PERMISSION_DENIED when the
 * file grants any access to group or others (fix: `chmod 600 FILE`), and
 * with INVALID_ARGUMENT when it does not hold a plausible token.
 */
export async function readToken (file: string): Promise<string> {
  let fh: fs.FileHandle
  try {
    fh = await fs.open(file, 'r')
  } catch (err) {
    throw fromSystemError(err, `open token file ${file}`)
  }
  try {
    // Check the descriptor we read from, not the path (no race with a chmod or rename).
    const st = await fh.stat()
    if (!st.isFile()) throw new VolmirrorError('INVALID_ARGUMENT', `token file ${file} is not a regular file`)
    const mode = st.mode & 0o777
    if ((mode & 0o077) !== 0) {
      throw new VolmirrorError('PERMISSION_DENIED',
        `token file ${file} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${file}`,
        { details: { file, mode } })
    }
    if (st.size > 4096) throw new VolmirrorError('INVALID_ARGUMENT', `token file ${file} is too large to hold a token`)
    const token = (await fh.readFile('utf8')).trim()
    if (token.length < MIN_TOKEN_CHARS || !TOKEN_SHAPE.test(token)) {
      throw new VolmirrorError('INVALID_ARGUMENT', `token file ${file} does not hold a token (at least ${MIN_TOKEN_CHARS} printable characters, no spaces)`)
    }
    return token
  } catch (err) {
    throw fromSystemError(err, `read token file ${file}`)
  } finally {
    await fh.close()
  }
}

/** tokenMatches compares a presented token with the expected one in constant time. */
export function tokenMatches (given: string | undefined, expected: string): boolean {
  const a = createHash('sha256').update(given ?? '').digest()
  const b = createHash('sha256').update(expected).digest()
  return timingSafeEqual(a, b) && given !== undefined && expected.length > 0
}

/** bearerToken extracts the token of an `Authorization: Bearer <token>` header (undefined if absent or malformed). */
export function bearerToken (header: string | undefined): string | undefined {
  if (!header) return undefined
  const m = /^Bearer +([^\s]+) *$/i.exec(header)
  return m ? m[1] : undefined
}
