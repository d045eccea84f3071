// Host grants: which origins (scheme, host, port) a plug-in may reach through http_fetch, read the way
// cspm/formats/hosts.py reads them (docs/formats.md "grant"): a bare entry is https, an entry without a
// port means the scheme's default port, `*.example.com` covers names under example.com only.

/** @type {Record<string, number>} */
export const DEFAULT_PORTS = { http: 80, https: 443 };

/** @typedef {{scheme: string, host: string, port: number}} Pattern */

/**
 * @param {string} entry
 * @returns {Pattern | null}
 */
export function parseEntry(entry) {
  entry = entry.trim();
  let scheme = "https";
  let rest = entry;
  const sep = entry.indexOf("://");
  if (sep >= 0) {
    scheme = entry.slice(0, sep).toLowerCase();
    rest = entry.slice(sep + 3);
  }
  if (!(scheme in DEFAULT_PORTS)) return null;
  let authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0];
  authority = authority.slice(authority.lastIndexOf("@") + 1);
  const colon = authority.lastIndexOf(":");
  let host = authority;
  let portText = "";
  if (colon >= 0) {
    host = authority.slice(0, colon);
    portText = authority.slice(colon + 1);
  }
  if (portText && !/^[0-9]+$/.test(portText)) return null;
  const port = portText ? Number(portText) : DEFAULT_PORTS[scheme];
  host = host.toLowerCase().replace(/\.+$/, "");
  if (!host || !(port > 0 && port < 65536) || /[\[\]%\\ ]/.test(host)) return null;
  return { scheme, host, port };
}

/**
 * The first entry that admits this origin, else null.
 * @param {readonly string[]} entries
 * @param {string} scheme without the colon
 * @param {string} host as it goes on the wire
 * @param {number | null} port null: the scheme's default
 * @returns {string | null}
 */
export function matchGrant(entries, scheme, host, port) {
  scheme = scheme.toLowerCase();
  if (!(scheme in DEFAULT_PORTS)) return null;
  host = host.toLowerCase().replace(/\.+$/, "");
  const wanted = port ?? DEFAULT_PORTS[scheme];
  for (const entry of entries) {
    const pattern = parseEntry(entry);
    if (pattern === null || pattern.scheme !== scheme || pattern.port !== wanted) continue;
    const name = pattern.host;
    if (name === host || (name.startsWith("*.") && host.endsWith(name.slice(1)) && host.split(".").length >= 3)) {
      return entry;
    }
  }
  return null;
}
