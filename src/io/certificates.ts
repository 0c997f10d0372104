/**
 * The TLS certificate chain and key, loaded from PEM files and reloaded without dropping a
 * connection: new handshakes use the newest good context, established connections keep theirs.
 * Reloads happen on SIGHUP (`reload()`) and when either file changes on disk (polled once a second,
 * which also sees the rename-into-place that ACME clients do). A broken new pair keeps the old one
 * and logs why.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync, type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';

export class CertificateStore {
  private readonly certPath: string;
  private readonly keyPath: string;
  private readonly log: Logger;
  private context: SecureContext;
  private watchers: StatWatcher[] = [];
  private pending: NodeJS.Timeout | undefined;
  /** Subject and expiry of the certificate in use (for logs and metrics). */
  info: { subject: string; validTo: string; fingerprint256: string };
  reloads = 0;
  failedReloads = 0;

  /** Loads the pair; a failure at start-up is a configuration error naming the key. */
  constructor(certPath: string, keyPath: string, log: Logger) {
    this.certPath = certPath;
    this.keyPath = keyPath;
    this.log = log;
    try {
      const loaded = this.load();
      this.context = loaded.context;
      this.info = loaded.info;
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const key = e.path === keyPath || /key/i.test(e.message) ? 'pkey' : 'cert';
      throw new ConfigError(key, `cannot load the TLS certificate/key: ${e.message}`, { cause: err });
    }
  }

  private load(): { context: SecureContext; info: CertificateStore['info'] } {
    const cert = readFileSync(this.certPath);
    const key = readFileSync(this.keyPath);
    const context = createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    const x509 = new X509Certificate(cert);
    return {
      context,
      info: { subject: x509.subject, validTo: x509.validTo, fingerprint256: x509.fingerprint256 },
    };
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
