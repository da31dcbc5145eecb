import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore, overlaps } from '../../../src/target/file-store.js';
import { StateFile } from '../../../src/target/state-file.js';

const dir = mkdtempSync(join(tmpdir(), 'aoegw-fs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function image(name: string, bytes: number): string {
  const p = join(dir, name);
  writeFileSync(p, '');
  truncateSync(p, bytes);
  return p;
}

function sectorsOf(fill: number, n: number): Buffer {
  return Buffer.alloc(n * 512, fill);
}

/**
 * Runs store operations one at a time and returns their completion results (bytes or −errno).
 * Without a ring a FileStore completes inside the call.
 */
function harness(store: FileStore) {
  const results = new Map<number, number>();
  store.attach((t, r) => results.set(t, r));
  let next = 1;
  const take = (t: number): number => {
    const r = results.get(t);
    if (r === undefined) throw new Error(`operation ${t} did not complete`);
    results.delete(t);
    return r;
  };
  return {
    read(lba: number, bufs: Uint8Array[], count = bufs.length): number {
      const t = next++;
      store.read(lba, bufs, count, t);
      return take(t);
    },
    write(lba: number, bufs: Uint8Array[], count = bufs.length, link = false): number {
      const t = next++;
      store.write(lba, bufs, count, t, link);
      return take(t);
    },
    sync(): number {
      const t = next++;
      store.sync(t);
      return take(t);
    },
  };
}

describe('FileStore', () => {
  for (const durability of ['sync', 'writeback', 'direct'] as const) {
    it(`reads and writes vectors in ${durability} mode, with an offset window`, () => {
      const p = image(`${durability}.img`, 1 << 20);
      let store: FileStore;
      try {
        store = new FileStore({ path: p, durability, offset: 4096, length: 64 * 512 });
      } catch (e) {
        // tmpfs without O_DIRECT support would land here; /tmp on this machine supports it.
        throw new Error(`cannot open ${durability} store: ${(e as Error).message}`);
      }
      const h = harness(store);
      expect(store.sectors).toBe(64);
      expect(store.syncsWrites).toBe(durability !== 'writeback');
      expect(h.write(3, [sectorsOf(1, 2), sectorsOf(2, 1)], 2)).toBe(1536);
      expect(h.write(10, [sectorsOf(3, 1), sectorsOf(9, 1)], 1)).toBe(512); // count limits the vector
      expect(h.sync()).toBe(0);
      const a = Buffer.alloc(1024);
      const b = Buffer.alloc(512);
      expect(h.read(3, [a, b], 2)).toBe(1536);
      expect(a.equals(sectorsOf(1, 2))).toBe(true);
      expect(b.equals(sectorsOf(2, 1))).toBe(true);
      store.close();
      const raw = readFileSync(p);
      expect(raw.subarray(4096 + 3 * 512, 4096 + 5 * 512).equals(sectorsOf(1, 2))).toBe(true);
      expect(raw.subarray(4096 + 10 * 512, 4096 + 11 * 512).equals(sectorsOf(3, 1))).toBe(true);
      expect(raw.subarray(4096 + 11 * 512, 4096 + 12 * 512).equals(sectorsOf(0, 1))).toBe(true);
      expect(raw.subarray(0, 4096).equals(Buffer.alloc(4096))).toBe(true);
    });
  }

  it('a failed linked write cancels the rest of its chain (the sync after it never reports success)', () => {
    const store = new FileStore({ path: image('chain.img', 8 * 512) });
    const h = harness(store);
    expect(h.write(7, [sectorsOf(1, 2)], 1, true)).toBe(-22); // past the end
    expect(h.write(0, [sectorsOf(1, 1)], 1, true)).toBe(-125);
    expect(h.sync()).toBe(-125);
    expect(h.sync()).toBe(0);
    store.close();
  });

  it('refuses what it cannot serve, naming the problem', () => {
    expect(() => new FileStore({ path: join(dir, 'missing.img') })).toThrow(
      /cannot open export backing .*missing\.img/,
    );
    expect(() => new FileStore({ path: image('odd.img', 1000) })).toThrow(/whole sectors/);
    expect(() => new FileStore({ path: image('o.img', 4096), offset: 100 })).toThrow(/multiple of 512/);
    expect(() => new FileStore({ path: image('o2.img', 4096), offset: 4096 })).toThrow(/does not fit/);
    expect(() => new FileStore({ path: dir, readOnly: true })).toThrow(
      /neither a regular file nor a block device/,
    );
    const ro = new FileStore({ path: image('ro.img', 4096), readOnly: true });
    expect(harness(ro).write(0, [sectorsOf(1, 1)])).toBe(-30); // EROFS
    ro.close();
  });

  it('keeps the BlockStore contract: ERR_STORE_OPEN, −EINVAL outside the window (nothing written), −EROFS', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return 'no error';
    };
    expect(code(() => new FileStore({ path: join(dir, 'missing2.img') }))).toBe('ERR_STORE_OPEN');
    expect(code(() => new FileStore({ path: image('odd2.img', 1000) }))).toBe('ERR_STORE_OPEN');
    expect(code(() => new FileStore({ path: dir }))).toBe('ERR_STORE_OPEN');
    for (const durability of ['sync', 'direct'] as const) {
      // A 16-sector window in the middle of a 64-sector file: the store alone guards its edges.
      const p = image(`win-${durability}.img`, 64 * 512);
      const st = new FileStore({ path: p, offset: 16 * 512, length: 16 * 512, durability });
      const h = harness(st);
      expect(h.write(15, [sectorsOf(7, 2)], 1)).toBe(-22);
      expect(h.write(16, [sectorsOf(7, 1)], 1)).toBe(-22);
      expect(h.write(-1, [sectorsOf(7, 1)], 1)).toBe(-22);
      expect(h.write(0.5, [sectorsOf(7, 1)], 1)).toBe(-22);
      expect(h.write(10, [sectorsOf(7, 4), sectorsOf(7, 4)], 2)).toBe(-22);
      expect(h.read(16, [Buffer.alloc(512)], 1)).toBe(-22);
      expect(h.write(0, [Buffer.alloc(100)], 1)).toBe(-22);
      expect(h.write(14, [sectorsOf(7, 2)], 1)).toBe(1024); // the last two sectors: fine
      st.close();
      expect(h.read(0, [Buffer.alloc(512)], 1)).toBe(-9); // EBADF after close
      const raw = readFileSync(p);
      expect(raw.subarray(32 * 512).equals(Buffer.alloc(32 * 512))).toBe(true);
      expect(raw.subarray(0, 16 * 512).equals(Buffer.alloc(16 * 512))).toBe(true);
      expect(raw.subarray(30 * 512, 32 * 512).equals(sectorsOf(7, 2))).toBe(true);
    }
  });

  it('identifies the bytes behind a path: same file through a symlink, distinct files apart', () => {
    const p = image('ident.img', 64 * 512);
    const link = join(dir, 'ident-link.img');
    symlinkSync(p, link);
    const a = new FileStore({ path: p, offset: 0, length: 32 * 512 });
    const b = new FileStore({ path: link, offset: 31 * 512, length: 8 * 512 });
    const c = new FileStore({ path: link, offset: 32 * 512 });
    const d = new FileStore({ path: image('ident2.img', 64 * 512) });
    expect(overlaps(a.identity, b.identity)).toBe(true);
    expect(overlaps(a.identity, c.identity)).toBe(false); // adjacent windows
    expect(overlaps(a.identity, d.identity)).toBe(false);
    for (const s of [a, b, c, d]) s.close();
  });
});

describe('StateFile', () => {
  it('persists config strings, masks and reservations atomically and reloads them', () => {
    const path = join(dir, 'state', 'target.json');
    const s = new StateFile(path);
    expect(s.get('1.2')).toBeUndefined();
    s.set('1.2', {
      config: Buffer.from('hello\u0000\xff', 'latin1'),
      masks: [{ ns: '', mac: Buffer.from('525400123456', 'hex') }],
      reserve: [
        { ns: '', mac: Buffer.from('020000000001', 'hex') },
        { ns: 'ab'.repeat(32), mac: Buffer.from('020000000002', 'hex') },
      ],
    });
    const again = new StateFile(path);
    const st = again.get('1.2')!;
    expect(st.config.equals(Buffer.from('hello\u0000\xff', 'latin1'))).toBe(true);
    expect(st.masks.map((m) => m.mac.toString('hex'))).toEqual(['525400123456']);
    expect(st.reserve.map((m) => [m.ns, m.mac.toString('hex')])).toEqual([
      ['', '020000000001'],
      ['ab'.repeat(32), '020000000002'],
    ]);
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(json.version).toBe(2);
    expect(json.exports['1.2'].masks).toEqual([{ ns: '', mac: '52:54:00:12:34:56' }]);
  });

  it('stages many changes and writes them once; a stale temp file or symlink is not followed', () => {
    const path = join(dir, 'batch', 'state.json');
    const s = new StateFile(path);
    for (let i = 0; i < 50; i++) s.stage(`1.${i}`, { config: Buffer.from(`c${i}`), masks: [], reserve: [] });
    expect(s.writes).toBe(0);
    s.saveIfDirty();
    s.saveIfDirty();
    expect(s.writes).toBe(1);
    expect(Object.keys(JSON.parse(readFileSync(path, 'utf8')).exports)).toHaveLength(50);
    // A symlink planted where the temp file goes must not redirect the write.
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'keep me');
    // Temp names are path.tmp-PID-SEQ: plant links at the next few.
    for (let i = 0; i < 20; i++) symlinkSync(victim, `${path}.tmp-${process.pid}-${i}`);
    s.stage('2.0', { config: Buffer.from('x'), masks: [], reserve: [] });
    s.saveIfDirty();
    expect(readFileSync(victim, 'utf8')).toBe('keep me');
    expect(new StateFile(path).get('2.0')?.config.toString()).toBe('x');
  });

  it('refuses a corrupt state file instead of starting with empty state', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, '{"version":1,"exports":{"1.2":{"config":"","masks":["zz"],"reserve":[]}}}');
    expect(() => new StateFile(path)).toThrow(/1\.2\.masks has 'zz', not a MAC/);
    writeFileSync(path, 'garbage');
    expect(() => new StateFile(path)).toThrow(/not valid JSON/);
    const fd = openSync(join(dir, 'v2.json'), 'w');
    closeSync(fd);
    writeFileSync(join(dir, 'v2.json'), '{"version":3}');
    expect(() => new StateFile(join(dir, 'v2.json'))).toThrow(/expected \{"version":2/);
    // Every content error is ERR_STATE_FILE and names the file.
    for (const text of [
      'garbage',
      '{"version":1,"exports":{"1.2":null}}',
      '{"version":1,"exports":{"1.2":{"config":5,"masks":[],"reserve":[]}}}',
      '{"version":1,"exports":{"1.2":{"config":"","masks":"x","reserve":[]}}}',
      '{"version":1,"exports":[]}',
    ]) {
      writeFileSync(path, text);
      expect(() => new StateFile(path)).toThrow(
        expect.objectContaining({ code: 'ERR_STATE_FILE', message: expect.stringContaining(path) }),
      );
    }
  });

  it('refuses a symlinked state file (it is not followed, nor replaced by the first save)', () => {
    const real = join(dir, 'real-state.json');
    writeFileSync(real, '{"version":1,"exports":{}}');
    const link = join(dir, 'link-state.json');
    symlinkSync(real, link);
    expect(() => new StateFile(link)).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_FILE',
        message: expect.stringMatching(/link-state\.json: is a symbolic link/),
      }),
    );
    // A dangling link too.
    const dangling = join(dir, 'dangling-state.json');
    symlinkSync(join(dir, 'nowhere.json'), dangling);
    expect(() => new StateFile(dangling)).toThrow(/symbolic link/);
  });

  it('checkWritable names the path when its directory cannot be written', () => {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    expect(() => new StateFile(join(file, 'state.json'))).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_FILE',
        message: expect.stringContaining(join(file, 'state.json')),
      }),
    );
    // procfs: the directory exists, but no file can be created in it (not even by root).
    const s = new StateFile('/proc/aoegw-test-state.json');
    expect(() => s.checkWritable()).toThrow(
      expect.objectContaining({
        code: 'ERR_STATE_FILE',
        message: expect.stringMatching(/\/proc\/aoegw-test-state\.json: cannot write in \/proc/),
      }),
    );
    const ok = new StateFile(join(dir, 'w', 'state.json'));
    ok.checkWritable();
    expect(readdirSync(join(dir, 'w'))).toEqual([]); // the probe is gone
  });

  it('flush(): at most one write in flight, later changes ride the next one', async () => {
    const path = join(dir, 'async', 'state.json');
    const s = new StateFile(path);
    s.checkWritable();
    const done: number[] = [];
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      s.stage(`1.${i}`, { config: Buffer.from(`v${i}`), masks: [], reserve: [] });
      const seen = i;
      waits.push(
        s.flush().then(() => {
          // When a flush resolves, the file holds that change.
          const json = JSON.parse(readFileSync(path, 'utf8'));
          expect(Buffer.from(json.exports[`1.${seen}`].config, 'base64').toString()).toBe(`v${seen}`);
          done.push(seen);
        }),
      );
    }
    await Promise.all(waits);
    expect(done).toHaveLength(100);
    expect(s.writes).toBe(2); // the first change alone, then the 99 staged during it
    expect(s.isDirty).toBe(false);
    expect(readdirSync(join(dir, 'async'))).toEqual(['state.json']);
  });

  it('close() writes the newest state synchronously; a write in flight does not overwrite it', async () => {
    const path = join(dir, 'closing', 'state.json');
    const s = new StateFile(path);
    s.checkWritable();
    s.stage('1.1', { config: Buffer.from('old'), masks: [], reserve: [] });
    const inFlight = s.flush();
    s.stage('1.1', { config: Buffer.from('new'), masks: [], reserve: [] });
    s.close();
    await inFlight;
    await new Promise((r) => setTimeout(r, 50));
    const json = JSON.parse(readFileSync(path, 'utf8'));
    expect(Buffer.from(json.exports['1.1'].config, 'base64').toString()).toBe('new');
    expect(readdirSync(join(dir, 'closing'))).toEqual(['state.json']);
  });

  it('flush() rejects with ERR_STATE_FILE when the write fails, and the change stays staged', async () => {
    const d = join(dir, 'gone');
    const s = new StateFile(join(d, 'state.json'));
    s.checkWritable();
    rmSync(d, { recursive: true });
    writeFileSync(d, 'now a file'); // the directory is gone: open() fails with ENOTDIR
    s.stage('1.1', { config: Buffer.from('x'), masks: [], reserve: [] });
    await expect(s.flush()).rejects.toMatchObject({
      code: 'ERR_STATE_FILE',
      message: expect.stringContaining(d),
    });
    expect(s.isDirty).toBe(true);
  });
});
