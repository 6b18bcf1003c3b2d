// aiprov: check a model page's provenance in the browser, trusting nothing the server says.
//
// 1. The log key: pinned on first use in localStorage (shown, and changeable), never re-read silently.
// 2. The checkpoint (/checkpoint, a C2SP signed note): its Ed25519 signature by the pinned key (WebCrypto).
// 3. The manifest digest: SHA-256 of the canonical manifest JSON built from the files listed on this page.
// 4. The registration entry: read from the log's entry bundle tile; it must be the `push` of this model and
//    version with that digest.
// 5. Its inclusion: the RFC 9162 inclusion proof computed here from the log's hash tiles (C2SP tlog-tiles),
//    folded to the checkpoint's root.
// Written by hand: no npm package verifies C2SP signed notes or RFC 9162 proofs from tiles, and WebCrypto has
// Ed25519 and SHA-256, so no library is needed.
"use strict";
(() => {
  const badge = document.getElementById("badge");
  if (!badge) return;
  const list = document.getElementById("checks");
  const keyShown = document.getElementById("pinned-key");
  const PIN = "aiprov.logkey:" + location.origin;
  const MANIFEST_TYPE = "https://aiprov.dev/manifest/v1";
  const TILE_WIDTH = 256;
  const enc = new TextEncoder();

  class CheckFailed extends Error {
    constructor(check, reason) {
      super(reason);
      this.check = check;
    }
  }

  const fail = (check, reason) => {
    throw new CheckFailed(check, reason);
  };

  function note(check, ok, text) {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "bad";
    li.dataset.check = check;
    li.textContent = check + ": " + text;
    list.appendChild(li);
  }

  function setBadge(state, text) {
    badge.className = "badge " + state;
    badge.dataset.state = state;
    badge.textContent = text;
  }

  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  };
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  function unbase64(text, check, what) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) fail(check, what + " is not base64");
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  async function get(path, check, binary) {
    let response;
    try {
      response = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    } catch (e) {
      fail(check, "cannot fetch " + path + ": " + e.message);
    }
    if (!response.ok) fail(check, path + " answered " + response.status);
    return binary ? new Uint8Array(await response.arrayBuffer()) : response.text();
  }

  // The log key --------------------------------------------------------------------------------------------

  async function parseKey(vkey) {
    const check = "log key";
    const text = vkey.trim();
    const first = text.indexOf("+");
    const second = text.indexOf("+", first + 1);
    const parts = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
    if (first < 1 || second < 0 || !/^[0-9a-f]{8}$/.test(parts[1])) fail(check, "not name+hexid+base64");
    const raw = unbase64(parts[2], check, "the key");
    if (raw.length !== 33 || raw[0] !== 1) fail(check, "not an Ed25519 note key");
    const pub = raw.slice(1);
    const id = (await sha256(concat(enc.encode(parts[0] + "\n"), raw))).slice(0, 4);
    if (hex(id) !== parts[1]) fail(check, "its key ID " + parts[1] + " does not match the key (" + hex(id) + ")");
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
    return { text: vkey.trim(), name: parts[0], id, key };
  }

  async function pinnedKey() {
    let text = localStorage.getItem(PIN);
    let firstUse = false;
    if (!text) {
      text = (await get("/api/v1/log/key", "log key")).trim();
      localStorage.setItem(PIN, text);
      firstUse = true;
    }
    keyShown.textContent = text;
    document.getElementById("change-key").hidden = false;
    const key = await parseKey(text);
    note("log key", true, (firstUse ? "pinned now, on first use: " : "pinned: ") + key.name + "+" + hex(key.id));
    return key;
  }

  // The checkpoint -----------------------------------------------------------------------------------------

  async function openCheckpoint(key) {
    const check = "checkpoint signature";
    const message = await get("/checkpoint", check);
    const split = message.lastIndexOf("\n\n");
    if (split < 0 || !message.endsWith("\n")) fail(check, "the checkpoint is not a signed note");
    const text = message.slice(0, split + 1);
    const lines = message.slice(split + 2, -1).split("\n");
    let signed = false;
    for (const line of lines) {
      if (!line.startsWith("\u2014 ")) fail(check, "malformed signature line");
      const [name, encoded] = line.slice(2).split(" ");
      const raw = unbase64(encoded || "", check, "a signature");
      if (name !== key.name || raw.length !== 68 || !equal(raw.slice(0, 4), key.id)) continue; // another key's
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, key.key, raw.slice(4), enc.encode(text));
      if (!ok) fail(check, "the signature by the pinned key " + key.name + " does not verify");
      signed = true;
    }
    if (!signed) fail(check, "no signature by the pinned key " + key.name + "+" + hex(key.id));
    const body = text.slice(0, -1).split("\n");
    if (body.length < 3) fail(check, "the checkpoint body has fewer than three lines");
    if (body[0] !== key.name) fail(check, "the checkpoint's origin " + body[0] + " is not the pinned log " + key.name);
    if (!/^(0|[1-9][0-9]*)$/.test(body[1])) fail(check, "malformed tree size");
    const root = unbase64(body[2], check, "the root hash");
    if (root.length !== 32) fail(check, "the root hash is not 32 bytes");
    const size = Number(body[1]);
    note(check, true, "a tree of " + size + " entries, signed by " + key.name);
    return { size, root };
  }

  // The manifest -------------------------------------------------------------------------------------------

  // Python sorts strings by code point; JavaScript's default sort is by UTF-16 code unit.
  const byCodePoint = (a, b) => {
    const x = Array.from(a.path, (c) => c.codePointAt(0));
    const y = Array.from(b.path, (c) => c.codePointAt(0));
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  };

  async function manifestDigest() {
    const check = "manifest digest";
    const rows = Array.from(document.querySelectorAll("#file-table tbody tr"));
    if (!rows.length) fail(check, "the page lists no files");
    const files = rows.map((r) => {
      const size = Number(r.dataset.size);
      if (!/^[0-9a-f]{64}$/.test(r.dataset.sha256 || "") || !Number.isSafeInteger(size) || size < 0) {
        fail(check, "the file " + r.dataset.path + " is listed with a malformed size or SHA-256");
      }
      return { path: r.dataset.path, sha256: r.dataset.sha256, size };
    });
    files.sort(byCodePoint);
    // RFC 8785 canonical JSON: keys in order, no spaces; JSON.stringify escapes strings as RFC 8785 does.
    const entries = files.map(
      (f) => '{"path":' + JSON.stringify(f.path) + ',"sha256":"' + f.sha256 + '","size":' + f.size + "}"
    );
    const canonical = '{"files":[' + entries.join(",") + '],"type":' + JSON.stringify(MANIFEST_TYPE) + "}";
    return { digest: "sha256:" + hex(await sha256(enc.encode(canonical))), count: files.length };
  }

  // Tiles --------------------------------------------------------------------------------------------------

  function tileIndex(n) {
    const groups = [String(n % 1000).padStart(3, "0")];
    for (n = Math.floor(n / 1000); n > 0; n = Math.floor(n / 1000)) groups.unshift("x" + String(n % 1000).padStart(3, "0"));
    return groups.join("/");
  }

  const tiles = new Map();

  async function tile(prefix, count, index, check) {
    // `count` is how many items the tree has at this tile's level: a full tile, or the partial last one.
    const full = Math.floor(count / TILE_WIDTH);
    const width = index < full ? TILE_WIDTH : count % TILE_WIDTH;
    if (index > full || width === 0) fail(check, "the tree has no tile " + prefix + "/" + index);
    const path = "/tile/" + prefix + "/" + tileIndex(index) + (width === TILE_WIDTH ? "" : ".p/" + width);
    if (!tiles.has(path)) tiles.set(path, get(path, check, true));
    return { data: await tiles.get(path), width, path };
  }

  async function entryAt(index, size) {
    const check = "registration entry";
    const { data, width, path } = await tile("entries", size, Math.floor(index / TILE_WIDTH), check);
    let at = 0;
    for (let i = 0; i < width; i++) {
      if (at + 2 > data.length) fail(check, path + " is truncated");
      const length = (data[at] << 8) | data[at + 1];
      if (at + 2 + length > data.length) fail(check, path + " is truncated");
      if (i === index % TILE_WIDTH) return data.slice(at + 2, at + 2 + length);
      at += 2 + length;
    }
    fail(check, path + " holds fewer entries than its width");
  }

  const isPowerOfTwo = (n) => n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // The hash of the perfect subtree of 2**level leaves starting at leaf index * 2**level, from the hash tiles.
  async function node(level, index, size, check) {
    const tileLevel = Math.floor(level / 8);
    const below = level - 8 * tileLevel;
    const count = Math.floor(size / 2 ** (8 * tileLevel));
    const first = index * 2 ** below;
    const { data, width, path } = await tile(String(tileLevel), count, Math.floor(first / TILE_WIDTH), check);
    if (data.length !== 32 * width) fail(check, path + " is " + data.length + " bytes, not " + 32 * width);
    let hashes = [];
    for (let i = first % TILE_WIDTH; i < (first % TILE_WIDTH) + 2 ** below; i++) hashes.push(data.slice(32 * i, 32 * i + 32));
    while (hashes.length > 1) {
      const up = [];
      for (let i = 0; i < hashes.length; i += 2) up.push(await nodeHash(hashes[i], hashes[i + 1]));
      hashes = up;
    }
    return hashes[0];
  }

  const largestPowerBelow = (n) => 2 ** Math.floor(Math.log2(n - 1)); // RFC 9162 k: 2**i < n <= 2**(i+1)

  // MTH of leaves [lo, hi) (RFC 9162 §2.1.1), from perfect subtrees read off the tiles.
  async function rangeHash(lo, hi, size, check) {
    const n = hi - lo;
    if (isPowerOfTwo(n) && lo % n === 0) return node(Math.log2(n), lo / n, size, check);
    const k = largestPowerBelow(n);
    return nodeHash(await rangeHash(lo, lo + k, size, check), await rangeHash(lo + k, hi, size, check));
  }

  // PATH(m, D[lo:hi]) of RFC 9162 §2.1.3.1, leaf first.
  async function inclusionPath(m, lo, hi, size, check) {
    const n = hi - lo;
    if (n === 1) return [];
    const k = largestPowerBelow(n);
    if (m - lo < k) return [...(await inclusionPath(m, lo, lo + k, size, check)), await rangeHash(lo + k, hi, size, check)];
    return [...(await inclusionPath(m, lo + k, hi, size, check)), await rangeHash(lo, lo + k, size, check)];
  }

  // RFC 9162 §2.1.3.2: fold the proof from the leaf hash to a root.
  async function rootFromProof(leaf, index, size, proof) {
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of proof) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await nodeHash(p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  // All checks ---------------------------------------------------------------------------------------------

  async function run() {
    list.textContent = "";
    setBadge("pending", "Checking provenance in your browser…");
    if (!window.isSecureContext || !window.crypto || !crypto.subtle) {
      fail("browser", "this page is not a secure context (https or localhost), so WebCrypto is unavailable");
    }
    const model = badge.dataset.model;
    const number = Number(badge.dataset.version);
    const leafIndex = Number(badge.dataset.leaf);
    const key = await pinnedKey();
    const checkpoint = await openCheckpoint(key);

    const { digest, count } = await manifestDigest();
    note("manifest digest", true, "the " + count + " files listed hash to " + digest);

    const check = "registration entry";
    if (!Number.isSafeInteger(leafIndex) || leafIndex < 0 || leafIndex >= checkpoint.size) {
      fail(check, "entry #" + badge.dataset.leaf + " is not in the checkpoint's " + checkpoint.size + " entries");
    }
    const entry = await entryAt(leafIndex, checkpoint.size);
    let event;
    try {
      event = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(entry));
    } catch (e) {
      fail(check, "entry #" + leafIndex + " is not JSON");
    }
    if (event.action !== "push" || event.model !== model) {
      fail(check, "entry #" + leafIndex + " is a " + event.action + " of " + event.model + ", not the push of " + model);
    }
    if (event.subject !== digest) {
      fail("manifest digest", "the listed files hash to " + digest + ", but entry #" + leafIndex + " registered " + event.subject);
    }
    if (!event.details || event.details.version !== number) {
      fail(check, "entry #" + leafIndex + " registered version " + (event.details || {}).version + ", not " + number);
    }
    note(check, true, "entry #" + leafIndex + " is the push of " + model + "@" + number + " with that digest, by " + event.actor);

    const proofCheck = "inclusion proof";
    const leaf = await sha256(concat(Uint8Array.of(0), entry));
    const proof = await inclusionPath(leafIndex, 0, checkpoint.size, checkpoint.size, proofCheck);
    const root = await rootFromProof(leaf, leafIndex, checkpoint.size, proof);
    if (root === null || !equal(root, checkpoint.root)) {
      fail(proofCheck, "entry #" + leafIndex + " with the tiles' " + proof.length + " proof hashes does not reach the signed root");
    }
    note(proofCheck, true, proof.length + " hashes from the tiles lead from entry #" + leafIndex + " to the signed root");

    setBadge(
      "ok",
      "Verified in your browser: the " + count + " files listed hash to the digest that log entry #" + leafIndex +
        " registered for " + model + "@" + number + ", and that entry is in the checkpoint of " + checkpoint.size +
        " entries signed by the pinned key " + key.name + "."
    );
  }

  function start() {
    run().catch((e) => {
      const check = e instanceof CheckFailed ? e.check : "check";
      note(check, false, e.message);
      setBadge("bad", "Not verified — " + check + ": " + e.message);
    });
  }

  const form = document.getElementById("key-form");
  document.getElementById("change-key").addEventListener("click", () => {
    form.hidden = !form.hidden;
    document.getElementById("key-input").value = localStorage.getItem(PIN) || "";
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = document.getElementById("key-input").value.trim();
    try {
      await parseKey(text);
    } catch (e) {
      setBadge("bad", "Not pinned — log key: " + e.message);
      return;
    }
    localStorage.setItem(PIN, text);
    form.hidden = true;
    start();
  });
  document.getElementById("key-server").addEventListener("click", () => {
    localStorage.removeItem(PIN);
    form.hidden = true;
    start();
  });
  start();
})();
