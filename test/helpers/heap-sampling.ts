/**
 * V8's sampling heap profiler, for the tests that prove a hot path allocates nothing per frame or
 * per operation: every allocation of ≥ 128 bytes on average is sampled with its JS stack, including
 * objects already collected by a minor or major GC.
 */
import { Session } from 'node:inspector';

export interface ProfileNode {
  callFrame: { functionName: string; url: string };
  selfSize: number;
  children: ProfileNode[];
}

/** One inspector call as a promise (for a test that must run its own measured loop inline). */
export function post<T>(s: Session, method: string, params: object = {}): Promise<T> {
  return new Promise((resolve, reject) =>
    s.post(method, params, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
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
