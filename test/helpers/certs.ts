// Test PKI for mutual-TLS tests, made with the `openssl` CLI in a fresh temp directory: a CA and
// leaf certificates usable both as TLS server and client (a node both accepts and dials).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface Pem {
  key: string;
  cert: string;
}

export interface TestCa {
  /** PEM certificate of the CA (what peers put in `tls.ca`). */
  cert: string;
  /**
   * Issues a leaf certificate for `name`. SAN: `ips` (default 127.0.0.1), DNS localhost + name;
   * pass other `ips` for a certificate that does not name the address it is dialled at.
   */
  issue(name: string, san?: { ips?: string[] }): Pem;
}

export interface TestPki {
  dir: string;
  /** Creates a self-signed CA named `name`. */
  ca(name: string): TestCa;
  /** Removes the temp directory. */
  cleanup(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function createPki(): TestPki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'foundation-tls-'));
  const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
  return {
    dir,
    ca(caName) {
      openssl(dir, [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        `${caName}.key`,
        '-out',
        `${caName}.crt`,
        '-days',
        '2',
        '-subj',
        `/CN=${caName}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      return {
        cert: read(`${caName}.crt`),
        issue(name, san = {}) {
          const base = `${caName}-${name}`;
          const ips = (san.ips ?? ['127.0.0.1']).map((ip) => `IP:${ip}`);
          writeFileSync(
            path.join(dir, `${base}.ext`),
            [
              'basicConstraints=CA:FALSE',
              'keyUsage=critical,digitalSignature,keyEncipherment',
              'extendedKeyUsage=serverAuth,clientAuth',
              `subjectAltName=${[...ips, 'DNS:localhost', `DNS:${name}`].join(',')}`,
              '',
            ].join('\n'),
          );
          openssl(dir, [
            'req',
            '-newkey',
            'ec',
            '-pkeyopt',
            'ec_paramgen_curve:P-256',
            '-nodes',
            '-keyout',
            `${base}.key`,
            '-out',
            `${base}.csr`,
            '-subj',
            `/CN=${name}`,
          ]);
          openssl(dir, [
            'x509',
            '-req',
            '-in',
            `${base}.csr`,
            '-CA',
            `${caName}.crt`,
            '-CAkey',
            `${caName}.key`,
            '-CAcreateserial',
            '-out',
            `${base}.crt`,
            '-days',
            '2',
            '-extfile',
            `${base}.ext`,
          ]);
          return { key: read(`${base}.key`), cert: read(`${base}.crt`) };
        },
      };
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
