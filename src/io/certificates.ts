/**
 * The TLS certificate chain and key, loaded from PEM files and reloaded without dropping a
 * connection: new handshakes use the newest good context, established connections keep theirs.
 * Reloads happen on SIGHUP (`reload()`) and when either file changes on disk (polled once a second,
 * which also sees the rename-into-place that ACME clients do). A broken new pair keeps the old one
 * and logs why.
 */

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';

/** Subject, expiry and fingerprint of a certificate (for logs and metrics). */
export interface CertificateInfo {
  readonly subject: string;
  readonly validTo: string;
  /** The end of validity as Unix seconds (for the expiry metric). */
  readonly validToSec: number;
  readonly fingerprint256: string;
}

/** A certificate chain and key that load together. */
export interface LoadedCertificate {
  readonly context: SecureContext;
  readonly info: CertificateInfo;
}

const ENCRYPTED_PEM = /-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: 4,ENCRYPTED/m;

function readPem(key: 'cert' | 'pkey', path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads the PEM certificate chain and private key files and builds the TLS context from them, as
 * the TLS listener uses it. Each failure is a ConfigError naming the key at fault: `cert` for an
 * unreadable file or no certificate in it, `pkey` for an unreadable, invalid or encrypted key, or
 * a key that is not the certificate's. Used at start-up (and by `check-config`) and on every reload.
 */
export function loadCertificatePair(certPath: string, keyPath: string): LoadedCertificate {
  const cert = readPem('cert', certPath);
  const key = readPem('pkey', keyPath);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new ConfigError('cert', `${certPath} holds no valid PEM certificate: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (ENCRYPTED_PEM.test(key.toString('latin1'))) {
    throw new ConfigError('pkey', `${keyPath} is encrypted: turnpike needs an unencrypted PEM private key`);
  }
  try {
    createPrivateKey(key);
  } catch (err) {
    throw new ConfigError('pkey', `${keyPath} holds no valid PEM private key: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_OSSL_X509_KEY_VALUES_MISMATCH') {
      throw new ConfigError('pkey', `${keyPath} is not the private key of the certificate in ${certPath}`, {
        cause: err,
      });
    }
    throw new ConfigError('cert', `cannot use ${certPath} with ${keyPath}: ${e.message}`, { cause: err });
  }
  return {
    context,
    info: {
      subject: x509.subject,
      validTo: x509.validTo,
      validToSec: Math.floor(Date.parse(x509.validTo) / 1000),
      fingerprint256: x509.fingerprint256,
    },
  };
}

export class CertificateStore {
  private readonly certPath: string;
  private readonly keyPath: string;
  private readonly log: Logger;
  private context: SecureContext;
  private watchers: StatWatcher[] = [];
  private pending: NodeJS.Timeout | undefined;
  /** Subject and expiry of the certificate in use (for logs and metrics). */
  info: CertificateInfo;
  reloads = 0;
  failedReloads = 0;

  /** Loads the pair; a failure at start-up is a configuration error naming the key (see `loadCertificatePair`). */
  constructor(certPath: string, keyPath: string, log: Logger) {
    this.certPath = certPath;
    this.keyPath = keyPath;
    this.log = log;
    const loaded = this.load();
    this.context = loaded.context;
    this.info = loaded.info;
  }

  private load(): LoadedCertificate {
    return loadCertificatePair(this.certPath, this.keyPath);
  }

  /** The context for the next handshake. */
  current(): SecureContext {
    return this.context;
  }

  /** Loads the files again; keeps the old pair (and says why) when the new one is broken. */
  reload(trigger: string): boolean {
    try {
      const loaded = this.load();
      const changed = loaded.info.fingerprint256 !== this.info.fingerprint256;
      this.context = loaded.context;
      this.info = loaded.info;
      this.reloads++;
      this.log.info(
        { trigger, subject: loaded.info.subject, validTo: loaded.info.validTo, changed },
        'tls certificate loaded',
      );
      return true;
    } catch (err) {
      this.failedReloads++;
      this.log.error(
        { trigger, err: (err as Error).message, keeping: this.info.fingerprint256 },
        'tls certificate reload failed; keeping the previous certificate',
      );
      return false;
    }
  }

  /** Watches both files; a change triggers a reload once writes settle. */
  watch(intervalMs = 1000): void {
    const onChange = (): void => {
      if (this.pending !== undefined) clearTimeout(this.pending);
      // ACME clients write the chain and the key one after the other: wait for both.
      this.pending = setTimeout(() => {
        this.pending = undefined;
        this.reload('file change');
      }, 2 * intervalMs);
      this.pending.unref();
    };
    for (const path of [this.certPath, this.keyPath]) {
      const w = watchFile(path, { interval: intervalMs, persistent: false }, (curr, prev) => {
        if (curr.mtimeMs !== prev.mtimeMs || curr.ino !== prev.ino || curr.size !== prev.size) onChange();
      });
      this.watchers.push(w);
    }
  }

  close(): void {
    if (this.pending !== undefined) clearTimeout(this.pending);
    for (const path of [this.certPath, this.keyPath]) unwatchFile(path);
    this.watchers = [];
  }
}
