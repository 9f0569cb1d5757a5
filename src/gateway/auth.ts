/** Client tokens: JWTs signed HS256 with the node's secret; `sub` is the user id. */
import { SignJWT, jwtVerify } from 'jose';
import { USER_ID_RE } from '../protocol/codes.js';

export class TokenError extends Error {}

export class Auth {
  /**
   * The secret as a WebCrypto key, imported once: given raw bytes, jose imports a new key
   * (a CryptoKey and its native handle) for every token, garbage that outlives many hellos.
   */
  private readonly key: Promise<CryptoKey>;
  constructor(secret: string) {
    this.key = crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    // A refused secret surfaces at the first verify or sign, not as an unhandled rejection.
    this.key.catch(() => {});
  }

  /** The user id of a valid token; throws TokenError for anything else (alg:none included). */
  async verify(token: string): Promise<string> {
    try {
      const { payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'], requiredClaims: ['sub'] });
      const sub = payload.sub;
      if (typeof sub !== 'string' || !USER_ID_RE.test(sub)) throw new TokenError('sub is not a valid user id');
      return sub;
    } catch (err) {
      if (err instanceof TokenError) throw err;
      throw new TokenError(err instanceof Error ? err.message : 'invalid token');
    }
  }

  async sign(user: string, ttlSeconds: number): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(user)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(await this.key);
  }
}
