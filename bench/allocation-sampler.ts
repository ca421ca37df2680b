/**
 * Preloaded into a process the profiler starts (`node --require dist/bench/allocation-sampler.js`):
 * samples every allocation, the objects young and old collections free included (which
 * `--heap-prof` leaves out: it reports only what is still alive at the end), and writes the
 * profile to ALLOCATION_PROFILE when the process exits. Garbage collection costs what was
 * allocated and survived, so this says where to cut it.
 */
import inspector from 'node:inspector';
import { writeFileSync } from 'node:fs';

/** One sample every this many bytes on average: fine enough for per-function shares. */
const SAMPLING_INTERVAL_BYTES = 4096;

const file = process.env.ALLOCATION_PROFILE;
if (file) {
  const session = new inspector.Session();
  session.connect();
  session.post('HeapProfiler.startSampling', {
    samplingInterval: SAMPLING_INTERVAL_BYTES,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  // The in-process session answers synchronously, so the profile can be taken on exit.
  process.on('exit', () => {
    session.post('HeapProfiler.getSamplingProfile', (err, result) => {
      if (!err) writeFileSync(file, JSON.stringify(result.profile));
    });
  });
}
