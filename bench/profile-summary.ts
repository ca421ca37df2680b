/** Summaries of V8's profiles for bench/profile.ts: where the time and the bytes go, by function. */

/** Where a frame is: its function, and its file (from node_modules/ or dist/ on) and line. */
function frameName(frame: { functionName: string; url: string; lineNumber: number }): string {
  const file = frame.url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^.*\/dist\//, '');
  return `${frame.functionName || '(anonymous)'} ${file ? `${file}:${frame.lineNumber + 1}` : ''}`;
}

export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (name, file and line), largest first, as shares of all samples. */
export function selfTimes(profile: CpuProfile): { name: string; ms: number; share: number }[] {
  const frameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const byName = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const frame = frameOf.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    total += us;
    if (!frame) return;
    const name = frameName(frame);
    byName.set(name, (byName.get(name) ?? 0) + us);
  });
  return [...byName.entries()]
    .map(([name, us]) => ({ name, ms: us / 1000, share: us / total }))
    .sort((a, b) => b.ms - a.ms);
}

/** A node of a sampling heap profile: a call frame and the bytes sampled in it. */
export interface AllocationNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: AllocationNode[];
}

/** Bytes allocated per function (name, file and line), largest first. */
export function allocations(head: AllocationNode): { name: string; bytes: number }[] {
  const byName = new Map<string, number>();
  const stack = [head];
  for (let node = stack.pop(); node; node = stack.pop()) {
    const name = frameName(node.callFrame);
    byName.set(name, (byName.get(name) ?? 0) + node.selfSize);
    stack.push(...node.children);
  }
  return [...byName.entries()]
    .map(([name, bytes]) => ({ name, bytes }))
    .sort((a, b) => b.bytes - a.bytes);
}
