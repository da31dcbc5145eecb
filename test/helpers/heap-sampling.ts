/**
 * V8's sampling heap profiler, for the tests that prove a hot path allocates nothing per frame or
 * per operation: every allocation of ≥ 128 bytes on average is sampled with its JS stack, including
 * objects already collected by a minor or major GC.
 */
import { Session } from 'node:inspector';

export interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

type CallFrame = ProfileNode['callFrame'];

/**
 * Bytes sampled anywhere below (and in) a frame that `enter` accepts; below such a frame, not
 * descending into frames `skip` accepts (a callback into the test, a Node call not ours to fix).
 * The whole subtree, not only the entered frames' own: the optimizing compiler inlines callees
 * into their caller or not, as it likes, and a callee not inlined (Node's Buffer.from, say) is
 * charged its own allocations.
 */
export function bytesUnder(
  n: ProfileNode,
  enter: (f: CallFrame) => boolean,
  skip: (f: CallFrame) => boolean = () => false,
  inside = false,
): number {
  if (inside && skip(n.callFrame)) return 0;
  const here = inside || enter(n.callFrame);
  let total = here ? n.selfSize : 0;
  for (const c of n.children) total += bytesUnder(c, enter, skip, here);
  return total;
}

/** Frames of one function, by name. */
export const named =
  (name: string) =>
  (f: CallFrame): boolean =>
    f.functionName === name;

/** One inspector call as a promise (for a test that must run its own measured loop inline). */
export function post<T>(s: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    s.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

/** What sampleUntilUnder saw: bytes measured per pass, the least of them, and a report for messages. */
export interface PassesResult {
  passes: number[];
  best: number;
  /** The bytes per pass and the heaviest allocation sites of the best pass. */
  report: string;
}

/**
 * The frame every measured pass runs under. It is called a few times only, so it is never
 * optimized and never inlined away: it is always a frame of its own in the profile. The hot code
 * under it is inlined or not as the optimizing compiler likes (and a function inlined into its
 * caller is charged to that caller), so counting below this frame, not below the function under
 * test, is what cannot miss an allocation.
 */
function measuredPass(pass: (i: number) => unknown, i: number): unknown {
  return pass(i);
}

/**
 * Samples `pass(i)` up to `maxPasses` times, stopping at the first pass that allocated less than
 * `bound` bytes below measuredPass (everything the pass ran: the code under test and the test's
 * own loop, which therefore must allocate nothing itself), not counting frames `skip` accepts (a
 * Node call that is not ours to fix). Why more than one pass: a per-frame allocation shows in
 * every pass, but so can the JIT's own warm-up on a loaded machine: the optimizing compiler runs
 * on a background thread, and while it waits for a CPU the hot function stays in the interpreter,
 * which boxes every intermediate double (a CI run saw ~320 KB in each of three passes of 140k
 * frames; the interpreter proper allocates ~40 MB there). Between passes the test sleeps briefly
 * so that thread gets the CPU.
 */
export async function sampleUntilUnder(
  pass: (i: number) => unknown,
  bound: number,
  o: { skip?: (f: CallFrame) => boolean; maxPasses?: number } = {},
): Promise<PassesResult> {
  const passes: number[] = [];
  let bestSites = '';
  for (let i = 0; i < (o.maxPasses ?? 6); i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    const head = await sampleHeap(() => measuredPass(pass, i));
    const bytes = bytesUnder(head, named('measuredPass'), o.skip);
    if (passes.length === 0 || bytes < Math.min(...passes)) bestSites = topSites(head);
    passes.push(bytes);
    if (bytes < bound) break;
  }
  const best = Math.min(...passes);
  return {
    passes,
    best,
    report: `bytes per pass: ${passes.join(', ')}; heaviest sites of the best: ${bestSites}`,
  };
}

/** Runs `work` with the sampling heap profiler on and returns the profile's root node. */
export async function sampleHeap(work: () => unknown): Promise<ProfileNode> {
  const s = new Session();
  s.connect();
  try {
    await post(s, 'HeapProfiler.enable');
    await post(s, 'HeapProfiler.startSampling', {
      samplingInterval: 128,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    await work();
    const { profile } = await post<{ profile: { head: ProfileNode } }>(s, 'HeapProfiler.stopSampling');
    return profile.head;
  } finally {
    s.disconnect();
  }
}

/**
 * The heaviest allocation sites in a profile (self bytes, summed per function and line), as text
 * for an assertion's message: a failing allocation test then says what allocated, not just how much.
 */
export function topSites(head: ProfileNode, count = 6): string {
  const sites = new Map<string, number>();
  const walk = (n: ProfileNode, stack: string): void => {
    const f = n.callFrame;
    const here = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    if (n.selfSize > 0)
      sites.set(`${here} <- ${stack}`, (sites.get(`${here} <- ${stack}`) ?? 0) + n.selfSize);
    for (const c of n.children) walk(c, here);
  };
  walk(head, '(root)');
  return [...sites]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([site, bytes]) => `${bytes} B ${site}`)
    .join('; ');
}
